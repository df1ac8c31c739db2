"""Log-likelihood scoring, as lm-evaluation-harness 0.4.13 (``HFLM``) does it, without lm-eval.

A request is a (context, continuation) pair of strings. It is tokenized like ``TemplateLM._encode_pair``
(trailing spaces of the context move to the continuation; the continuation's tokens are those of
``context + continuation`` past the context's own tokens; an empty context is replaced by the prefix token),
fed as ``(context + continuation)[-(max_length + 1):][:-1]``, right-padded in batches sorted by decreasing
length, and scored as the summed log-probability of the continuation tokens plus whether every continuation
token is the greedy (argmax) prediction.

Metrics of a multiple-choice document with log-likelihoods ``ll[i]`` and choice strings ``choice[i]``
(``Doc.choices``) follow ``ConfigurableTask.process_results``:

* ``acc``      = 1 if argmax_i ll[i] == gold
* ``acc_norm`` = 1 if argmax_i ll[i] / len(choice[i]) == gold      (length in characters)

(``np.argmax``: the first of equal maxima). LAMBADA: ``acc`` = mean of "continuation is greedy",
``perplexity`` = exp(-mean ll) over documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .suite import Doc

DEFAULT_MAX_LENGTH = 2048       # lm-eval's default when neither the config nor the tokenizer gives one
TOKENIZER_INFINITY = 1000000000000000019884624838656


def resolve_max_length(config, tokenizer, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The model's context length, looked up as lm-eval does (config, then tokenizer, then ``default``)."""
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    value = getattr(tokenizer, "model_max_length", None)
    if value is not None and value != TOKENIZER_INFINITY:
        return int(value)
    return default


def prefix_token_id(tokenizer) -> int | None:
    """BOS, else EOS: what conditions an empty context (lm-eval's ``HFLM.prefix_token_id``)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


class PairEncoder:
    """Tokenizes (context, continuation) pairs exactly like lm-eval's ``HFLM`` with default arguments."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.prefix = prefix_token_id(tokenizer)
        self._prefix_text = tokenizer.decode(self.prefix) if self.prefix is not None else None

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and self._prefix_text and text.startswith(self._prefix_text):
            kwargs["add_special_tokens"] = False
        return self.tokenizer.encode(text, **kwargs)

    def __call__(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """-> (context token ids, continuation token ids), both non-empty."""
        if context == "":
            cont = self.encode(continuation, add_special_tokens=False)
            if self.prefix is None:
                raise ValueError("an empty context needs a BOS or EOS token, and the tokenizer has neither")
            return ([self.prefix], cont) if self.prefix != cont[0] else (cont[:1], cont[1:])
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]


@torch.no_grad()
def loglikelihoods(model, pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int = 16,
                   max_length: int = DEFAULT_MAX_LENGTH, desc: str = "scoring",
                   progress: bool = True) -> list[tuple[float, bool]]:
    """Summed log-probability of each continuation given its context, and whether it is the greedy one.

    pairs: (context ids, continuation ids). Requests are run longest first (ties broken by their tokens, so the
    batches and hence the floating-point results do not depend on the input order), right-padded with 0 and
    without an attention mask (padding after the scored tokens cannot change them in a causal model).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: (-len(pairs[i][0]) - len(pairs[i][1]),
                                                     tuple(pairs[i][0] + pairs[i][1])))
    results: list[tuple[float, bool] | None] = [None] * len(pairs)
    bar = tqdm(total=len(pairs), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        inputs, conts = [], []
        for i in idx:
            ctx, cont = pairs[i]
            if not cont or len(cont) > max_length:
                raise ValueError(f"continuation of {len(cont)} tokens does not fit a context of {max_length}")
            inputs.append((ctx + cont)[-(max_length + 1):][:-1])
            conts.append(cont)
        width = max(len(x) for x in inputs)
        batch = torch.zeros(len(idx), width, dtype=torch.long)             # (B, T), right-padded with 0
        for row, x in enumerate(inputs):
            batch[row, :len(x)] = torch.tensor(x, dtype=torch.long)
        logits = model(input_ids=batch.to(device)).logits                  # (B, T, V)
        for row, (i, x, cont) in enumerate(zip(idx, inputs, conts)):
            span = logits[row, len(x) - len(cont):len(x)]                   # (n_cont, V)
            logprobs = F.log_softmax(span.float(), dim=-1)
            target = torch.tensor(cont, device=logprobs.device)
            ll = logprobs.gather(-1, target[:, None]).sum().item()
            greedy = bool((logprobs.argmax(-1) == target).all())
            results[i] = (ll, greedy)
        bar.update(len(idx))
    bar.close()
    return results  # type: ignore[return-value]


def _mean_stderr(values: list[float]) -> float:
    """lm-eval's ``mean_stderr``: sample standard deviation / sqrt(n) (0 for fewer than 2 values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def score_multiple_choice(docs: list[Doc], lls: list[list[float]], delimiter: str) -> tuple[dict, list[dict]]:
    """(metrics, per-document samples). lls[d][i]: log-likelihood of choice i of document d."""
    accs, norms, samples = [], [], []
    for doc, ll in zip(docs, lls):
        ll_arr = np.array(ll, dtype=np.float64)
        lengths = np.array([float(len(c)) for c in doc.choices(delimiter)])
        pred, pred_norm = int(np.argmax(ll_arr)), int(np.argmax(ll_arr / lengths))
        accs.append(1.0 if pred == doc.gold else 0.0)
        norms.append(1.0 if pred_norm == doc.gold else 0.0)
        samples.append({"doc_id": doc.doc_id, "gold": doc.gold, "loglikelihoods": list(ll), "pred": pred,
                        "pred_norm": pred_norm})
    n = len(docs)
    metrics = {"acc": sum(accs) / n, "acc_stderr": _mean_stderr(accs),
               "acc_norm": sum(norms) / n, "acc_norm_stderr": _mean_stderr(norms)}
    return metrics, samples


def score_lambada(docs: list[Doc], results: list[tuple[float, bool]]) -> tuple[dict, list[dict]]:
    """(metrics, samples) of LAMBADA: greedy-continuation accuracy and perplexity exp(-mean ll)."""
    greedy = [1.0 if g else 0.0 for _, g in results]
    lls = [ll for ll, _ in results]
    n = len(docs)
    metrics = {"acc": sum(greedy) / n, "acc_stderr": _mean_stderr(greedy),
               "perplexity": math.exp(-sum(lls) / n)}
    samples = [{"doc_id": d.doc_id, "loglikelihood": ll, "greedy": g} for d, (ll, g) in zip(docs, results)]
    return metrics, samples


def chance(docs: list[Doc], kind: str) -> float:
    """Expected accuracy of a uniform random guess: mean of 1/#choices (0 for LAMBADA's open vocabulary)."""
    if kind == "lambada":
        return 0.0
    return sum(1.0 / len(d.contexts) for d in docs) / len(docs)


def fitting_documents(encoder: PairEncoder, docs: list[Doc], max_length: int) -> tuple[list[Doc], int]:
    """(the documents whose every continuation is non-empty and fits ``max_length`` tokens, how many were
    skipped): such a request cannot be scored (lm-eval drops it too); the count is reported with the task."""
    kept = [d for d in docs if all(0 < len(encoder(c, x)[1]) <= max_length
                                   for c, x in zip(d.contexts, d.continuations))]
    return kept, len(docs) - len(kept)


def score_task(model, encoder: PairEncoder, docs: list[Doc], kind: str, delimiter: str, *, batch_size: int,
               max_length: int, desc: str, progress: bool) -> tuple[dict, list[dict]]:
    """Run every request of ``docs`` and compute the task's metrics."""
    flat = [(c, x) for d in docs for c, x in zip(d.contexts, d.continuations)]
    pairs = [encoder(c, x) for c, x in flat]
    results = loglikelihoods(model, pairs, batch_size=batch_size, max_length=max_length, desc=desc,
                             progress=progress)
    if kind == "lambada":
        return score_lambada(docs, results)
    lls, k = [], 0
    for d in docs:
        lls.append([ll for ll, _ in results[k:k + len(d.contexts)]])
        k += len(d.contexts)
    return score_multiple_choice(docs, lls, delimiter)
