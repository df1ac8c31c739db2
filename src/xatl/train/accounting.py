"""Token and FLOP accounting, per stage, with the formulas stated (all FLOPs are multiply-add = 2).

Per trained token, with T the block size, L the layers, d_attn = heads * head_dim, d_head the head size:

* weights: ``2 N`` forward + ``2 N`` backward to the activations + ``2 N_train`` backward to the weights, where
  N counts every parameter used in a matmul (all but the input embedding table; a tied LM head counts once) and
  N_train those of them that train this step. With everything trainable this is the usual ``6 N``.
* token mixing (not in N): per softmax-attention layer ``2 T d_attn`` forward (Kaplan et al.: QK^T and AV over
  the full context); per LCI layer ``4 d_head d_attn`` forward (one state update and one state read per head, the
  recurrent cost; chunked kernels trade some of it for intra-chunk work). Training costs 3x the forward.
* distillation adds the donor's forward (``2 N_donor`` + its attention term); alignment costs the teacher trunk's
  forward plus forward and backward of the student's LCI mixers alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..mixers.registry import is_recurrent, keeps_donor_attention


def matmul_params(model: nn.Module) -> int:
    """Parameters used in matmuls: all unique parameters but the input (and learned position) embeddings; a tied
    LM head is the embedding matrix used once as a matmul."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb
    n = total - (0 if tied else emb.numel())
    pos = getattr(getattr(model, "model", None), "embed_positions", None)
    if isinstance(pos, nn.Embedding):
        n -= pos.weight.numel()
    return n


def _shape(config) -> tuple[int, int, int]:
    """(layers, d_attn, d_head) of any HF causal-LM config."""
    heads = config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, heads * d_head, d_head


def mixing_flops_forward(config, block_size: int) -> float:
    """Forward token-mixing FLOPs per token (see the module docstring)."""
    layers, d_attn, d_head = _shape(config)
    kinds = getattr(config, "layer_mixers", None) or ["softmax"] * layers
    n_soft = sum(not is_recurrent(k) for k in kinds)        # a growing KV cache: attention over the context
    return n_soft * 2 * block_size * d_attn + (layers - n_soft) * 4 * d_head * d_attn


def trainable_matmul_params(model: nn.Module) -> int:
    """Trainable parameters used in matmuls (an untied input embedding table is a lookup, not a matmul)."""
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb
    return sum(p.numel() for p in model.parameters() if p.requires_grad and (tied or p is not emb))


def teacher_forward_flops(teacher: nn.Module, block_size: int, trunk_only: bool = False) -> float:
    """Forward FLOPs per token of a teacher (``trunk_only``: without its LM head)."""
    n = matmul_params(teacher)
    if trunk_only:
        n -= teacher.get_output_embeddings().weight.numel()
    return 2 * n + mixing_flops_forward(teacher.config, block_size)


@dataclass
class FlopCounter:
    """FLOPs per token of each stage for a given model (and its teachers)."""

    n_matmul: int
    mixing_forward: float
    kd_forward: float = 0.0
    """The donor's forward per token (distillation)."""
    align_teacher_forward: float = 0.0
    """The softmax twin's trunk forward per token (alignment)."""
    align_params: int = 0
    align_mixing_forward: float = 0.0

    @classmethod
    def build(cls, model: nn.Module, block_size: int, kd_donor: nn.Module | None = None,
              twin: nn.Module | None = None, align_params: int = 0) -> FlopCounter:
        layers, d_attn, d_head = _shape(model.config)
        kinds = getattr(model.config, "layer_mixers", None) or ["softmax"] * layers
        n_lci = sum(not keeps_donor_attention(k) for k in kinds)    # the layers alignment trains
        return cls(n_matmul=matmul_params(model), mixing_forward=mixing_flops_forward(model.config, block_size),
                   kd_forward=teacher_forward_flops(kd_donor, block_size) if kd_donor is not None else 0.0,
                   align_teacher_forward=teacher_forward_flops(twin, block_size, True) if twin is not None else 0.0,
                   align_params=align_params, align_mixing_forward=n_lci * 4 * d_head * d_attn)

    def lm_per_token(self, n_train: int, kd: bool) -> float:
        """LM stage: 4 N + 2 N_train + 3 * mixing (+ the donor's forward with distillation)."""
        f = 4 * self.n_matmul + 2 * n_train + 3 * self.mixing_forward
        return f + (self.kd_forward if kd else 0.0)

    def align_per_token(self) -> float:
        """Alignment: the teacher trunk's forward + 6 N_mixers + 3 * the LCI mixing term."""
        return self.align_teacher_forward + 6 * self.align_params + 3 * self.align_mixing_forward


def stage_record() -> dict:
    return {"steps": 0, "tokens": 0, "flops": 0.0, "seconds": 0.0}
