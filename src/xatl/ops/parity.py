"""fla's kernels against xatl's PyTorch chunked forms: the same op with ``use_fla=True`` and ``False``, on outputs,
final states and the gradients of every input and of the initial state. Used by ``tests/ops/test_fla_parity.py``
(CPU, Triton's interpreter) and by ``make bench-gpu`` (CUDA, fp32 and bf16).

    errors = compare("gla", B=2, H=4, T=1000, K=64, V=64, device="cuda", dtype=torch.bfloat16)
    # {"output": 3e-3, "final state": 1e-3, "d q": ..., "d initial state": ...}: max |fla - torch| / max(1, max |torch|)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import delta_rule, gla, linear_attention, retention, ssd

OPS = {"gla": gla.chunk_gla, "ssd": ssd.chunk_ssd, "retention": retention.chunk_retention,
       "linear": linear_attention.chunk_linear_attn, "delta": delta_rule.chunk_delta_rule,
       "gated_delta": delta_rule.chunk_delta_rule}


def grad_names(kind: str) -> list[str]:
    """The differentiated inputs of ``kind``'s op, in order, then the initial state."""
    if kind == "linear":
        return ["q", "k", "v", "initial state", "initial k sum"]
    if "delta" in kind:
        names = ["q", "k", "v", "beta"] + (["g"] if kind == "gated_delta" else [])
    else:
        names = ["q", "k", "v", "gate"]
    return [*names, "initial state"]


def inputs(kind: str, B: int, H: int, T: int, K: int, V: int, *, seed: int = 0, device="cpu",
           dtype=torch.float32) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(the op's tensors (B, H, T, .), [initial state (B, H, K, V)] in fp32, with linear attention's key sum
    (B, H, K) too): queries pre-scaled by K^-0.5 as the mixers pass them; keys L2-normalised for the delta rules;
    feature-mapped (positive) queries and keys for linear attention; gates in log space, weak and strong mixed."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g)                                       # noqa: E731
    q, k, v = rnd(B, H, T, K) * K**-0.5, rnd(B, H, T, K), rnd(B, H, T, V)
    s0 = rnd(B, H, K, V) * 0.5
    if kind == "gla":
        xs = [q, k, v, F.logsigmoid(rnd(B, H, T, K)) / 8]
    elif kind == "ssd":
        xs = [q, k, v, F.logsigmoid(2 * rnd(B, H, T))]
    elif kind == "retention":
        xs = [q, k, v, torch.log(1 - 2.0 ** (-5 - torch.arange(H, dtype=torch.float32)))]
    elif kind == "linear":
        xs = [F.elu(q) + 1, F.elu(k) + 1, v]
        states = [s0.abs(), rnd(B, H, K).abs() * T]
        return [x.to(device, dtype) for x in xs], [t.to(device) for t in states]
    else:
        xs = [q, F.normalize(k, dim=-1), v, torch.sigmoid(rnd(B, H, T))]
        if kind == "gated_delta":
            xs.append(F.logsigmoid(3 * rnd(B, H, T)))
    xs = [x.to(device, dtype) if i < 3 else x.to(device) for i, x in enumerate(xs)]   # q, k, v in dtype; gates fp32
    return xs, [s0.to(device)]


def run(kind: str, xs, states, *, use_fla: bool):
    """([o, *final states], gradients of a fixed scalar loss wrt every input and initial state; None where one
    does not reach the loss)."""
    xs = [x.clone().requires_grad_() for x in xs]
    states = [s.clone().requires_grad_() for s in states]
    init = tuple(states) if len(states) > 1 else states[0]
    o, final = OPS[kind](*xs, initial_state=init, output_final_state=True, use_fla=use_fla)
    finals = list(final) if isinstance(final, tuple) else [final]
    w = torch.linspace(-1, 1, o.numel(), device=o.device).view_as(o)
    loss = (o.float() * w).sum() + sum(f.float().square().mean() for f in finals)
    return [o, *finals], torch.autograd.grad(loss, [*xs, *states], allow_unused=True)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |b|), in fp32."""
    a, b = a.float(), b.float()
    return (a - b).abs().max().item() / max(1.0, b.abs().max().item())


def compare(kind: str, *, reference_dtype=torch.float32, **shape_and_device) -> dict[str, float | None]:
    """fla (inputs in ``dtype``) against the PyTorch form (the same inputs in ``reference_dtype``): the relative
    error of the output, each final state and each gradient (None: not differentiated by either)."""
    xs, states = inputs(kind, **shape_and_device)
    (o_f, *s_f), g_f = run(kind, xs, states, use_fla=True)
    ref = [x.to(reference_dtype) if x.is_floating_point() and x.dtype != torch.float32 else x for x in xs]
    (o_t, *s_t), g_t = run(kind, ref, states, use_fla=False)
    out = {"output": relative_error(o_f, o_t)}
    for i, (a, b) in enumerate(zip(s_f, s_t)):
        if tuple(a.shape) != tuple(b.shape):
            raise AssertionError(f"{kind}: fla's state is {tuple(a.shape)}, torch's {tuple(b.shape)}")
        out["final state" if i == 0 else "final k sum"] = relative_error(a, b)
    for name, a, b in zip(grad_names(kind), g_f, g_t):
        if (a is None) != (b is None):
            raise AssertionError(f"{kind}: d {name} is None on one side only")
        out[f"d {name}"] = None if b is None else relative_error(a, b)
    return out
