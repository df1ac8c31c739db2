"""Evaluation and decode-cost measurement of the study's models, through :mod:`xatl.eval`.

The zero-shot average uses one headline metric per task, the one the Mamba/GLA papers report: ``acc_norm`` for
HellaSwag and ARC-Challenge, ``acc`` for the others.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path

from .schema import ProfileSpec, Recipe

log = logging.getLogger(__name__)

HEADLINE = {"lambada": "acc", "hellaswag": "acc_norm", "piqa": "acc", "arc_easy": "acc",
            "arc_challenge": "acc_norm", "winogrande": "acc"}


def evaluate_model(path: str, recipe: Recipe, validation_texts: list[str], *, donor_results=None,
                   device: str = "auto", progress: bool = True, zero_shot: bool = True) -> dict:
    """Score the model at ``path`` on ``recipe.eval.tasks``: ppl on ``validation_texts`` (whole held-out
    documents, windows of ``ppl_window`` tokens), the zero-shot tasks (unless ``zero_shot`` is False) on their
    first ``limit`` documents."""
    from ..eval import evaluate, load_model
    from ..eval.loading import pick_device

    spec = recipe.eval
    model, tokenizer = load_model(path, device=str(pick_device(device)))
    common = dict(batch_size=spec.batch_size, donor_results=donor_results, model_path=path, progress=progress)
    results = None
    if "ppl" in spec.tasks:
        results = evaluate(model, tokenizer, ["ppl"], data=validation_texts,
                           ppl_window=spec.ppl_window or recipe.data.block_size, **common)
    suite = [t for t in spec.tasks if t != "ppl"] if zero_shot else []
    if suite:
        more = evaluate(model, tokenizer, suite, limit=spec.limit, **common)
        results = more if results is None else _merge(results, more)
    del model
    return results


def evaluate_long(path: str, spec, tasks: list[str], out: Path, *, donor_results=None, device: str = "auto",
                  progress: bool = True) -> Path:
    """Score the model at ``path`` on the long-context ``tasks`` with ``spec.config()`` (a
    :class:`~xatl.experiment.schema.LongContextSpec`), relative to ``donor_results`` (a results JSON) where given;
    write ``out`` (results.json) and, beside it, each task's plot and generated documents. -> ``out``."""
    from ..eval import evaluate, load_model
    from ..eval.loading import pick_device
    from ..eval.long.report import save_results

    model, tokenizer = load_model(path, device=str(pick_device(device)))
    results = evaluate(model, tokenizer, tasks, long_context=spec.config(), donor_results=donor_results,
                       model_path=path, progress=progress)
    del model
    save_results(results, out)
    return out


def _merge(a: dict, b: dict) -> dict:
    a["tasks"].update(b["tasks"])
    for key in ("relative_to_donor", "relative_skipped"):
        if key in b:
            a.setdefault(key, {}).update(b[key])
    if "donor" in b:
        a.setdefault("donor", {"model": b["donor"].get("model"), "tasks": {}})["tasks"].update(b["donor"]["tasks"])
    a["settings_suite"] = b["settings"]
    return a


def donor_above_chance(results: dict, name: str, metric: str) -> bool:
    """True when the donor's score on ``name`` is more than two standard errors above chance: only then is a
    score relative to the donor, (student - chance) / (donor - chance), meaningful."""
    donor = results.get("donor", {}).get("tasks", {}).get(name, {}).get("metrics", {})
    chance = results.get("tasks", {}).get(name, {}).get("chance")
    if metric not in donor or chance is None:
        return False
    return donor[metric] - chance > 2 * (donor.get(f"{metric}_stderr") or 0.0)


def headline(results: dict) -> dict:
    """{"tasks": {task: headline value}, "zero_shot_avg", "relative": {task: relative}, "relative_avg",
    "ppl", "bits_per_byte", "ppl_ratio"} of an evaluation's results (None where absent). Relative scores are
    kept only for tasks where the donor is clearly above chance (:func:`donor_above_chance`)."""
    tasks, relative, variances = {}, {}, []
    for name, metric in HEADLINE.items():
        t = results.get("tasks", {}).get(name)
        if t is None:
            continue
        tasks[name] = t["metrics"].get(metric)
        variances.append((t["metrics"].get(f"{metric}_stderr") or 0.0) ** 2)
        rel = results.get("relative_to_donor", {}).get(name, {}).get(metric)
        if rel is not None and donor_above_chance(results, name, metric):
            relative[name] = rel
    ppl = results.get("tasks", {}).get("ppl", {}).get("metrics", {})
    return {"tasks": tasks, "metrics": {n: HEADLINE[n] for n in tasks}, "margin_ratio": margin_ratio(results, tasks),
            "zero_shot_avg": statistics.fmean(tasks.values()) if tasks else None,
            "zero_shot_stderr": math.sqrt(sum(variances)) / len(variances) if variances else None,
            "relative": relative, "relative_avg": statistics.fmean(relative.values()) if relative else None,
            "ppl": ppl.get("perplexity"), "bits_per_byte": ppl.get("bits_per_byte"),
            "ppl_ratio": results.get("relative_to_donor", {}).get("ppl", {}).get("perplexity_ratio")}


def margin_ratio(results: dict, tasks: dict) -> float | None:
    """(student average - chance average) / (donor average - chance average) over the headline metrics of
    ``tasks`` (the share of the donor's margin above chance the student keeps), or None when there is no donor or
    the donor's average is not more than two standard errors above chance (then no share is meaningful)."""
    donor = results.get("donor", {}).get("tasks", {})
    rows = []
    for name, value in tasks.items():
        d = donor.get(name, {}).get("metrics", {})
        metric = HEADLINE[name]
        if value is None or metric not in d:
            continue
        rows.append((value, d[metric], d.get(f"{metric}_stderr") or 0.0, results["tasks"][name].get("chance", 0.0)))
    if not rows:
        return None
    s, d, c = (statistics.fmean(r[i] for r in rows) for i in (0, 1, 3))
    err = math.sqrt(sum(r[2] ** 2 for r in rows)) / len(rows)
    return (s - c) / (d - c) if d - c > 2 * err else None


def profile_models(paths: dict[str, str], spec: ProfileSpec, *, device: str = "auto", progress: bool = True) -> list:
    """Decode cost (:func:`xatl.eval.profile.profile_model`) of each ``{label: model path}``, one model loaded
    at a time."""
    from ..eval import load_model
    from ..eval.loading import pick_device
    from ..eval.profile import ProfileConfig, profile_model

    cfg = ProfileConfig(contexts=list(spec.contexts), decode_steps=spec.decode_steps,
                        warmup_steps=spec.warmup_steps, prefill_chunk=spec.prefill_chunk, bound=False)
    out = []
    for label, path in paths.items():
        model, _ = load_model(path, device=str(pick_device(device)))
        out.append(profile_model(model, cfg, name=label, progress=progress))
        del model
    return out


def complete_prompts(paths: dict[str, str], spec, *, device: str = "auto", progress: bool = True) -> dict:
    """Greedy continuations of ``spec.texts`` (a :class:`~xatl.experiment.schema.PromptSpec`) by each
    ``{label: model path}``, one model loaded at a time -> ``{"prompts", "max_new_tokens", "models": [{"model",
    "completions": [{"text", "new_tokens", "seconds", "tokens_per_s"}]}]}``."""
    from tqdm.auto import tqdm

    from ..eval import load_model
    from ..eval.loading import pick_device
    from ..generation import DecodingSettings, generate_text

    settings = DecodingSettings(max_new_tokens=spec.max_new_tokens)
    models = []
    for label, path in tqdm(paths.items(), desc="prompts", unit="model", disable=not progress):
        model, tokenizer = load_model(path, device=str(pick_device(device)))
        rows = []
        for text in spec.texts:
            r = generate_text(model, tokenizer, text, settings)
            rows.append({"text": r.text, "new_tokens": r.new_tokens, "seconds": round(r.seconds, 3),
                         "tokens_per_s": round(r.tokens_per_s, 1)})
        models.append({"model": label, "path": path, "completions": rows})
        del model
    return {"prompts": list(spec.texts), "max_new_tokens": spec.max_new_tokens, "models": models}
