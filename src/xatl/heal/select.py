"""Which layers of a hybrid keep softmax attention, chosen for long context (``xatl heal --attention-layers auto:K``).

The criterion is measured, not assumed: on long retrieval probes (passkey prompts of ``length`` tokens with the
answer appended, generated from their own seed, never the evaluation's), the KL divergence from the donor's
next-token distribution to the student's at the answer tokens, with each candidate layer switched back to softmax
attention (the layer's own projections, so the donor's attention) and every other layer left linear-cost. The K
layers whose switch lowers that KL most are kept as softmax.

The student it is measured on is a pure linear-cost student after a short attention transfer (``align_probe``:
stage 1 of healing, a few steps), since unaligned mixers would make every layer look important. The probe's
aligned mixers are not wasted: heal starts the hybrid's stage 1 from them.

    sel = select_attention_layers(student, donor, tokenizer, k=4, length=1024, count=4)
    sel.layers            # e.g. [3, 9, 14, 20]
    sel.kl                # {layer: KL with it switched, ...}; sel.base_kl: none switched
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..mixers.registry import keeps_donor_attention


@dataclass
class Selection:
    layers: list[int]
    """The chosen softmax layers, ascending."""
    kl: dict[int, float]
    """Mean KL(donor || student) at the probe answers with each candidate layer switched back to softmax (nats)."""
    base_kl: float
    """The same with no layer switched."""
    probes: dict = field(default_factory=dict)
    """How the probes were made: length, count, seed, scored tokens."""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kl"] = {str(k): v for k, v in self.kl.items()}
        return d


def lci_layers(student) -> list[int]:
    return [i for i, m in enumerate(student.config.layer_mixers) if not keeps_donor_attention(m)]


@contextlib.contextmanager
def switched_to_softmax(student, layer: int):
    """Inside the block, layer ``layer`` of ``student`` runs softmax attention with its own Q/K/V/O projections."""
    from ..mixers.softmax import SoftmaxAttention

    block = student.model.layers[layer]
    original = block.mixer
    cfg = copy.copy(student.config)
    cfg.attention_layers = sorted(set(cfg.attention_layers) | {layer})
    soft = SoftmaxAttention(cfg, layer).to(device=next(original.parameters()).device,
                                           dtype=next(original.parameters()).dtype)
    missing, _ = soft.load_state_dict(original.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"layer {layer}'s mixer lacks the projections of softmax attention ({missing[0]})")
    block.mixer = soft.eval()
    try:
        yield
    finally:
        block.mixer = original


def probe_prompts(tokenizer, length: int, count: int, seed: int) -> list[tuple[torch.Tensor, list[int]]]:
    """``count`` passkey prompts of ``length`` tokens with the answer appended, needles at depths spread over
    (0.1, 0.9): [(ids (1, T), positions whose next token is an answer token)]."""
    from ..eval.long.generate import encode
    from ..eval.long.passkey import passkey_prompt

    out = []
    for i in range(count):
        depth = 0.1 + 0.8 * (i / max(count - 1, 1))
        prompt, key = passkey_prompt(tokenizer, length, depth, seed, i)
        answer = encode(tokenizer, f" {key}.")
        ids = prompt.ids + answer
        start = len(prompt.ids) - 1
        out.append((torch.tensor([ids]), list(range(start, start + len(answer)))))
    return out


@torch.no_grad()
def _log_probs(model, probes) -> list[torch.Tensor]:
    return [F.log_softmax(model(input_ids=ids, use_cache=False).logits[0, pos].float(), -1) for ids, pos in probes]


@torch.no_grad()
def answer_kl(student, probes, donor_logp: list[torch.Tensor]) -> float:
    """Mean KL(donor || student) over every scored answer token of ``probes``."""
    total, n = 0.0, 0
    for lp_s, lp_d in zip(_log_probs(student, probes), donor_logp):
        total += F.kl_div(lp_s, lp_d, log_target=True, reduction="sum").item()
        n += lp_s.shape[0]
    return total / n


def select_attention_layers(student, donor, tokenizer, k: int, *, length: int = 1024, count: int = 4, seed: int = 1,
                            progress: bool = False) -> Selection:
    """The ``k`` layers of ``student`` (a pure or partly linear-cost student) that most lower the answer KL on long
    retrieval probes when switched back to softmax (module docstring)."""
    t0 = time.perf_counter()
    candidates = lci_layers(student)
    if k > len(candidates):
        raise ValueError(f"cannot keep {k} softmax layers: the student has {len(candidates)} linear-cost layers")
    was_training = student.training
    student.eval()
    probes = probe_prompts(tokenizer, length, count, seed)
    donor_logp = _log_probs(donor.eval(), probes)
    base = answer_kl(student, probes, donor_logp)
    kl = {}
    for i in _bar(candidates, progress):
        with switched_to_softmax(student, i):
            kl[i] = answer_kl(student, probes, donor_logp)
    student.train(was_training)
    layers = sorted(sorted(candidates, key=lambda i: (kl[i], i))[:k])
    info = {"task": "passkey (answer appended)", "length": length, "count": count, "seed": seed,
            "scored_tokens": sum(len(p) for _, p in probes)}
    return Selection(layers, kl, base, info, round(time.perf_counter() - t0, 2))


def _bar(items, progress: bool):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="select layers", unit="layer")


def align_probe(student, donor, batches, lr: float, report) -> list[float]:
    """A short stage 1 on ``student`` in place: every LCI mixer's new parameters (those ``report`` does not list as
    copied) learn the donor's attention outputs on the donor's inputs, one AdamW step per batch of ids (B, T),
    constant ``lr``. Returns the loss of each step."""
    from ..train.params import build_plan
    from ..train.teacher import MixerAligner, softmax_twin, teacher_activations

    params = [p for _, p in build_plan(student, report, "copied").align]
    twin = softmax_twin(donor, student.config)
    aligner = MixerAligner(student)
    req = {id(p): p.requires_grad for p in student.parameters()}
    for p in student.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    student.train()
    losses = []
    try:
        for ids in batches:
            loss = aligner(teacher_activations(twin, aligner.layers, ids)).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
    finally:
        for p in student.parameters():
            p.requires_grad_(req[id(p)])
        student.eval()
    return losses
