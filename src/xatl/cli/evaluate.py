"""``xatl eval``: zero-shot suite + held-out perplexity of any HF causal LM, optionally relative to its donor."""

from __future__ import annotations

import argparse
from dataclasses import fields

from .convert import parse_option
from .types import positive_int

HELP = "evaluate a model (student or donor) on the zero-shot suite and held-out perplexity"
DESCRIPTION = """Score a causal LM on the fetched zero-shot suite (`xatl fetch evalsuite`) and on held-out text.

Multiple choice (hellaswag, piqa, arc_easy, arc_challenge, winogrande): acc and acc_norm, 0-shot, as
lm-evaluation-harness 0.4.13 defines them (acc_norm divides each choice's log-likelihood by its length in
characters). lambada: greedy last-word accuracy and perplexity. ppl: perplexity and bits per byte of the held-out
validation documents (or --data), scored in disjoint windows of --ppl-window tokens.

Long-context tasks (named explicitly, or all four as `long`; `all` leaves them out, they take minutes per
model): ppl_position: perplexity by token position (buckets 1-63, 64-255, 256-511, 512-1023, ... up to
--max-length) on long held-out sotu/pydoc documents (or --data), with the decoding state's bytes at each length;
passkey, niah, mqar: retrieval over a grid of context lengths, generated from --seed. A model limited to fewer
positions (max_position_embeddings) that is not linear-cost is scored up to its limit; longer lengths are
reported as skipped. With --out, each task's plot (FILE.<task>.png) and generated documents
(FILE.<task>.documents.json) are written beside the scores.

With --donor (or --donor-results) every score is also reported relative to the donor:
(student - chance) / (donor - chance) for accuracies, student / donor for perplexities."""
EPILOG = """examples:
  xatl eval --model students/smol-ret --tasks piqa,arc_easy --limit 100
  xatl eval --model students/smol-ret --donor smollm2-135m --out results/smol-ret.json
  xatl eval --model smollm2-135m --out results/donor.json && \\
    xatl eval --model students/smol-ret --donor-results results/donor.json
  xatl eval --write-lm-eval-tasks lm_eval_tasks/    # then: python -m xatl.eval.harness --model xatl ...
  xatl eval --model students/smol-ret --donor smollm2-135m --tasks ppl_position,passkey,niah,mqar \\
    --max-length 8192 --out results/long.json     # + results/long.ppl_position.png, ...documents.json
  xatl eval --model students/smol-ret --tasks ppl_position --max-length 16384 --documents 4
tasks: lambada, hellaswag, piqa, arc_easy, arc_challenge, winogrande, ppl (all: these);
long-context: ppl_position, passkey, niah, mqar (long: these)."""

DTYPES = ("float32", "bfloat16", "float16")


def _long_default(name: str):
    from ..eval.long.config import LongContextConfig
    from ..utils.settings import default_of

    return default_of(next(f for f in fields(LongContextConfig) if f.name == name))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..eval.long.config import LongContextConfig
    from .flags import add_flags

    p.add_argument("--model", help="model directory (student or donor), .gguf file or fetched asset name")
    p.add_argument("--tasks", default="all", help="comma-separated tasks (default: all)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N documents of each task")
    p.add_argument("--batch-size", type=positive_int, default=8, help="requests per forward pass (default 8)")
    p.add_argument("--out", metavar="FILE.json", help="write the results (with task versions and model hash) here")
    donor = p.add_mutually_exclusive_group()
    donor.add_argument("--donor", metavar="DIR", help="also evaluate this donor with the same settings and report "
                       "relative scores")
    donor.add_argument("--donor-results", metavar="FILE.json", help="donor results written earlier by --out")
    p.add_argument("--data", metavar="PATH", help="held-out documents for ppl: .jsonl (field 'text'), .txt or a "
                   "directory (default: the validation split of the default training data)")
    p.add_argument("--suite", metavar="DIR", help="benchmark directory (default: the fetched evalsuite)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="weights dtype (default float32)")
    p.add_argument("--mixer-option", dest="mixer_options", type=parse_option, action="append", default=[],
                   metavar="KEY=VALUE", help="override an option of a student's mixers for this evaluation, e.g. "
                   "sparse_cache=64 (LoLA's exact cache; options that need new weights are refused); recorded in "
                   "the results")
    p.add_argument("--max-length", type=positive_int, default=None, help="context length for the suite (default: the "
                   "model's, as lm-eval resolves it); with a long-context task: its longest context (default "
                   f"{_long_default('max_length')}), and the suite keeps the model's")
    p.add_argument("--ppl-window", type=positive_int, default=1024, help="tokens per held-out window (default 1024)")
    p.add_argument("--ppl-stride", type=positive_int, default=None, help="new tokens per window; < window slides "
                   "(default: = window, disjoint)")
    p.add_argument("--log-samples", action="store_true", help="keep per-document log-likelihoods in the JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--lm-eval", action="store_true", help="score the suite tasks with lm-evaluation-harness "
                   "itself (model `xatl`, generated offline tasks) instead of the built-in scorer")
    p.add_argument("--write-lm-eval-tasks", metavar="DIR", help="write lm-eval task YAMLs (xatl_<task>) for the "
                   "local benchmark files into DIR and exit")
    p.add_argument("--list-tasks", action="store_true", help="list the tasks and exit")
    add_flags(p, LongContextConfig, group=LONG_GROUP, only=LONG_FLAGS)


LONG_GROUP = "long-context tasks (ppl_position, passkey, niah, mqar)"
LONG_FLAGS = ("lengths", "depths", "samples", "mqar_pairs", "documents", "seed", "chunk")
"""The fields of LongContextConfig that are flags of their own (max_length is --max-length)."""


def long_context_config(args: argparse.Namespace, tasks: list[str]):
    """(The LongContextConfig of the flags, or None without a long-context task; the --max-length the suite tasks
    get, None: the model's)."""
    from ..eval.long.config import LongContextConfig
    from ..eval.suite import LONG_CONTEXT, TASKS
    from .flags import flag_values

    if not any(TASKS[t].kind == LONG_CONTEXT for t in tasks):
        return None, args.max_length
    values = flag_values(args, LongContextConfig, only=LONG_FLAGS)
    if args.max_length is not None:
        values["max_length"] = args.max_length
    return LongContextConfig(**values), None


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..eval.suite import TASKS

    if args.list_tasks:
        for spec in TASKS.values():
            print(f"{spec.name:14s} {spec.description}")
        return 0
    if args.write_lm_eval_tasks:
        from ..eval.lm_tasks import write_lm_eval_tasks

        tasks = None if args.tasks == "all" else args.tasks
        names = write_lm_eval_tasks(args.write_lm_eval_tasks, tasks, suite=args.suite)
        print(f"wrote {len(names)} lm-eval tasks to {args.write_lm_eval_tasks}: {', '.join(names)} (tag xatl_suite)")
        return 0
    if not args.model:
        raise ConfigError("--model is required (or --write-lm-eval-tasks DIR / --list-tasks)")
    if args.out:
        from ..utils.fs import check_writable_file

        check_writable_file(args.out)        # before the evaluation, not after it
    if args.lm_eval:
        return _evaluate_with_lm_eval(args)
    return _evaluate(args)


def _evaluate_with_lm_eval(args: argparse.Namespace) -> int:
    """The suite tasks through lm-evaluation-harness, in this process, on tasks generated into a temporary dir."""
    import os
    import tempfile

    from ..errors import ConfigError
    from ..eval.lm_tasks import write_lm_eval_tasks
    from ..eval.loading import resolve_model
    from ..eval.suite import TASKS, parse_tasks
    from ..utils.fs import atomic_write_bytes, json_text

    if args.donor or args.donor_results:
        raise ConfigError("--lm-eval does not compute relative scores; drop --donor/--donor-results")
    tasks = [t for t in parse_tasks(args.tasks) if TASKS[t].from_suite]
    if not tasks:
        raise ConfigError("--lm-eval scores the suite tasks only; ppl has no lm-eval task")
    where = str(resolve_model(args.model))
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lm_eval.utils import handle_non_serializable, make_table

    from ..eval.harness import lm_eval_evaluate

    with tempfile.TemporaryDirectory(prefix="xatl-lm-eval-") as tmp:
        write_lm_eval_tasks(tmp, tasks, suite=args.suite)
        results = lm_eval_evaluate(where, tasks=tasks, include_path=tmp, limit=args.limit,
                                   batch_size=args.batch_size, log_samples=args.log_samples,
                                   device=None if args.device == "auto" else args.device, dtype=args.dtype,
                                   bootstrap_iters=1000)
    print(make_table(results))
    if args.out:
        atomic_write_bytes(args.out, json_text(results, default=handle_non_serializable).encode())
        print(f"wrote {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from ..eval.runner import evaluate_path, format_table
    from ..eval.suite import parse_tasks

    tasks = parse_tasks(args.tasks)          # refuse an unknown task before loading anything
    long_cfg, max_length = long_context_config(args, tasks)     # and bad long-context settings
    results = evaluate_path(
        args.model, tasks, donor=args.donor, device=args.device, dtype=getattr(torch, args.dtype),
        mixer_options=dict(args.mixer_options),
        donor_results=args.donor_results, limit=args.limit, batch_size=args.batch_size, data=args.data,
        suite=args.suite, max_length=max_length, ppl_window=args.ppl_window, ppl_stride=args.ppl_stride,
        log_samples=args.log_samples, long_context=long_cfg, progress=not args.no_progress)
    print(format_table(results))
    print(f"model sha256 {results['model']['sha256'][:16]}…  ({sum(t['seconds'] for t in results['tasks'].values()):.0f}s)")
    if args.out:
        from ..eval.long.report import save_results

        extra = save_results(results, args.out)
        print(f"wrote {args.out}" + "".join(f", {p.name}" for p in extra))
    return 0
