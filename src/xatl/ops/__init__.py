"""Pure token-mixing functions, one file per mixer family.

Every op has the signature ``op(q, k, v, ..., initial_state=None, output_final_state=False) -> (o, final_state)``
and comes in three forms held equal by the tests: ``naive_*`` (obviously correct, quadratic), ``chunk_*``
(parallel within chunks, recurrent across them: training and prefill) and ``recurrent_*`` (token by token:
decoding). They compute in float32 and return ``o`` in the dtype of ``v``; states are float32.
"""
