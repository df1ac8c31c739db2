"""Pure token-mixing functions, one file per mixer family.

Every op has the signature ``op(q, k, v, ..., initial_state=None, output_final_state=False) -> (o, final_state)``
and comes in three forms held equal by the tests: ``naive_*`` (obviously correct, quadratic), ``chunk_*``
(parallel within chunks, recurrent across them: training and prefill) and ``recurrent_*`` (token by token:
decoding). They compute in float32 and return ``o`` in the dtype of ``v``; states are float32. Each module lists
its forms in one table, ``FORMS = {"naive": ..., "chunked": ..., "recurrent": ...}``, from which the mixers run the
form they are asked for (``utils.run_form``). The decayed linear attentions share one recurrence (GLA's: SSD is GLA
with one decay per head, retention is SSD with a constant one) and one cross-chunk step (``utils.finish_chunked``).

    linear_attention  linear attention with a normaliser          (linear)
    retention         fixed per-head decay                         (retention)
    gla               data-dependent per-channel decay             (gla; retention with xPos)
    ssd               data-dependent scalar decay per head         (mamba2)
    delta_rule        the delta rule, optionally with SSD's gate   (deltanet, gated_deltanet)
    selective_scan    S6: per-channel, per-state decay            (mamba), with ``conv`` its short convolution
    sliding_window    windowed softmax attention                   (swa)
    fla_backend       optional flash-linear-attention GPU kernels for the chunked forms
"""
