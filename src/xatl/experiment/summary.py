"""The numbers of a finished study, gathered from its run directory into one JSON-able dict (``summary.json``);
the report and the plots are drawn from it.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from .evaluation import headline
from .long_context import collect_long
from .schema import Recipe, StudentRun
from .speedup import crossing, final_loss, range_verdict, speedup, speedup_curve, spread, value_at
from .stages import DONE, read_json
from .training import read_metrics, val_curve


def _result(run_dir: Path, stage: str) -> dict:
    marker = read_json(run_dir / stage / DONE) or {}
    return marker.get("result", {}) | {"seconds": marker.get("seconds")}


def _eval(run_dir: Path, model: str) -> dict | None:
    path = run_dir / "eval" / model / "results.json"
    try:
        return headline(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _run_entry(recipe: Recipe, run_dir: Path, run: StudentRun) -> dict:
    rows = read_metrics(run_dir / run.stage / run.train_subdir)
    curve = val_curve(rows)
    s = run.spec
    copies = s.copy.strip() != "none"
    result = _result(run_dir, run.stage)
    entry = {"id": run.id, "mixer": run.mixer, "student": s.name, "label": run.label, "group": s.group,
             "seed": run.seed, "copy": s.copy, "attention_layers": s.attention_layers, "freeze": s.freeze and copies,
             "unfreeze": s.unfreeze if copies else "never", "lr": result.get("lr") or s.lr or recipe.train.lr,
             "curve": [list(p) for p in curve], "final_val_loss": final_loss(curve),
             "flops_curve": flops_curve(rows), "max_steps": recipe.train_of(s).max_steps,
             "tokens": rows[-1].get("tokens") if rows else None, "wall": rows[-1].get("wall") if rows else None,
             "unfreeze_step": result.get("unfreeze_step"), "seconds": result.get("seconds"),
             "eval": _eval(run_dir, run.id), "healed": run.healed,
             "flops": result.get("flops") or (result.get("trainer") or {}).get("flops")}
    if run.healed:
        plan = result.get("plan") or {}
        entry.update(copy="all", freeze=True, unfreeze=f"heal ({(s.heal or {}).get('stage2', 'lora')})", lr=None,
                     heal={"align_steps": plan.get("align_steps"), "lm_steps": plan.get("lm_steps"),
                           "settings": dict(s.heal or {})})
    return entry


def flops_curve(rows: list[dict]) -> list[list[float]]:
    """(step, cumulative training FLOPs) from the trainer's records (step 0: 0)."""
    points = {0: 0.0}
    for r in rows:
        if isinstance(r.get("flops"), (int, float)):
            points[int(r["step"])] = float(r["flops"])
    return [[k, v] for k, v in sorted(points.items())] if len(points) > 1 else []


def _compute(entry: dict, base: dict, donor_flops: float | None) -> dict:
    """FLOPs each side spends to reach the crossing's target, and the end-to-end ratio that charges the donor's
    pretraining to XATL (the paper's convention takes the donor as given: ratio of the students' FLOPs alone)."""
    c = entry.get("crossing") or {}
    x = value_at(entry.get("flops_curve") or [], c.get("xatl_steps"))
    b = value_at(base.get("flops_curve") or [], c.get("scratch_steps"))
    out = {"xatl_flops": x, "scratch_flops": b, "donor_flops": donor_flops,
           "paper_ratio": b / x if x and b else None, "end_to_end_ratio": None}
    if x is not None and b is not None and donor_flops:
        out["end_to_end_ratio"] = b / (donor_flops + x)
    return out


def best_rate(finals: list[tuple[float | None, float]]) -> float | None:
    """The learning rate of the lowest final validation loss among (loss, rate) pairs; a run without a finite
    loss never wins, and ties go to the first listed (None: no pairs)."""
    scored = [(loss if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf, lr) for loss, lr in finals]
    return min(scored, key=lambda t: t[0])[1] if scored else None


def sweeps(recipe: Recipe, run_dir: Path) -> list[dict]:
    """Per swept student and mixer: every rate's final validation loss and curve, and the rate the runs used."""
    out = []
    for spec in (s for s in recipe.students if s.lr_sweep):
        for mixer in spec.mixers:
            tried = [_run_entry(recipe, run_dir, r) for r in recipe.sweep_runs() if r.spec is spec and r.mixer == mixer]
            best = best_rate([(e["final_val_loss"], e["lr"]) for e in tried])
            out.append({"student": spec.name, "label": spec.label or spec.name, "mixer": mixer, "seed": spec.seeds[0],
                        "best_lr": best, "edge": best in (min(spec.lr_sweep), max(spec.lr_sweep)),
                        "runs": [{"lr": e["lr"], "final_val_loss": e["final_val_loss"], "curve": e["curve"]}
                                 for e in tried]})
    return out


def _baseline_of(runs: dict, recipe: Recipe, entry: dict) -> dict | None:
    base = recipe.student(recipe.report.baseline)
    same = runs.get(f"{entry['mixer']}-{base.name}-s{entry['seed']}")
    return same or next((r for r in runs.values() if r["student"] == base.name and r["mixer"] == entry["mixer"]),
                        None)


def _main_rows(recipe: Recipe, runs: dict) -> dict:
    """Per mixer: the main XATL student against the scratch baseline, over seeds, with the verdict."""
    main, base, target = recipe.report.main, recipe.report.baseline, recipe.report.target_speedup
    out = {}
    for mixer in recipe.student(main).mixers:
        xs = [r for r in runs.values() if r["student"] == main and r["mixer"] == mixer]
        bs = [r for r in runs.values() if r["student"] == base and r["mixer"] == mixer]
        if not xs or not bs:
            continue
        sp = [r["speedup"] for r in xs]
        x_loss, b_loss = spread([r["final_val_loss"] for r in xs]), spread([r["final_val_loss"] for r in bs])
        longer = any(r.get("max_steps") != xs[0].get("max_steps") for r in bs)
        if longer:                                # compare at equal steps: the baseline's curve at XATL's last step
            at = xs[0]["curve"][-1][0] if xs[0]["curve"] else None
            b_equal = spread([value_at(r["curve"], at) for r in bs])
        else:
            b_equal = b_loss
        x_zs = spread([(r["eval"] or {}).get("zero_shot_avg") for r in xs])
        b_zs = spread([(r["eval"] or {}).get("zero_shot_avg") for r in bs])
        noise = _difference_noise([(r["eval"] or {}).get("zero_shot_stderr") for r in xs],
                                  [(r["eval"] or {}).get("zero_shot_stderr") for r in bs])
        zero_shot, why = _higher(x_zs[0], b_zs[0], noise)
        checks = {"speedup": all(bool(s and s.get("reached") and (s["unbounded"] or s["speedup"] >= target))
                                 for s in sp),
                  "lower_loss": _less(x_loss[0], b_equal[0]), "higher_zero_shot": zero_shot}
        values = [s["speedup"] for s in sp if s and s.get("speedup") is not None]
        cross = [r.get("crossing") or {} for r in xs]
        measured = [math.inf if c.get("unbounded") else c.get("speedup") for c in cross]   # None: not reached
        crossed = any(c.get("reached") for c in cross)
        cross_ok, cross_why = range_verdict(measured, target)
        if crossed:                               # a longer baseline crossed: the measured speedup decides
            checks["speedup"] = cross_ok
        compute = [r.get("compute") or {} for r in xs]
        verdict = "no" if False in checks.values() else "yes" if all(checks.values()) else "undecided"
        out[mixer] = {"xatl_final": x_loss, "scratch_final": b_loss, "scratch_at_xatl_steps": b_equal,
                      "baseline_longer": longer, "xatl_zero_shot": x_zs, "scratch_zero_shot": b_zs,
                      "speedups": [s["text"] if s else "no curve" for s in sp], "speedup_mean": spread(values),
                      "speedup_lower_bound": any(bool(s and s.get("lower_bound")) for s in sp),
                      "zero_shot_noise": noise, "seeds": len(xs), "checks": checks,
                      "undecided": {k: v for k, v in (("higher_zero_shot", why),
                                                      ("speedup", cross_why if crossed and cross_ok is None else None))
                                    if v},
                      "measured": crossed,
                      "verdict": verdict, "meets_target": verdict == "yes",
                      "crossings": [c.get("text") or "no curve" for c in cross],
                      "crossing": spread([v for v in measured if v is not None and math.isfinite(v)]),
                      "crossing_range": _range(measured),
                      "crossing_verdict": (cross_ok, cross_why),
                      "end_to_end": spread([c.get("end_to_end_ratio") for c in compute]),
                      "end_to_end_range": _range([c.get("end_to_end_ratio") for c in compute]),
                      "paper_flops_ratio": spread([c.get("paper_ratio") for c in compute]),
                      "scratch_final_vs_xatl_final": beats([r["final_val_loss"] for r in xs],
                                                           [r["final_val_loss"] for r in bs])}
    return out


def _range(values: list) -> list | None:
    xs = [v for v in values if v is not None and math.isfinite(v)]
    return [min(xs), max(xs)] if xs else None


def _metric(entry: dict, key: str):
    if key == "final_val_loss":
        return entry.get("final_val_loss")
    return (entry.get("eval") or {}).get(key)


def beats(better: list, worse: list) -> tuple[bool | None, str]:
    """Is every value of ``better`` below every value of ``worse`` (lower is better)? -> (verdict, why): None
    ("not established") when a side has fewer than two seeds or the two seed ranges overlap; a difference must be
    larger than the spread over seeds to count."""
    better, worse = [v for v in better if v is not None], [v for v in worse if v is not None]
    if not better or not worse:
        return None, "not measured"
    gap = statistics.fmean(worse) - statistics.fmean(better)
    if len(better) < 2 or len(worse) < 2:
        return None, f"difference {gap:+.3f} from one seed: no spread, not established"
    if max(better) < min(worse):
        return True, (f"difference {gap:+.3f}; seed ranges {min(better):.3f}-{max(better):.3f} and "
                      f"{min(worse):.3f}-{max(worse):.3f} do not overlap")
    if min(better) > max(worse):
        return False, f"the other way round: difference {gap:+.3f}, seed ranges do not overlap"
    return None, f"difference {gap:+.3f} within the seed spread (ranges overlap): not established"


def heal_rows(recipe: Recipe, runs: dict) -> list[dict]:
    """Per healed student (the pure ones: no softmax layers) and mixer: it against the main (plain XATL) and the
    baseline (scratch) students of the same mixer, over seeds, on held-out perplexity and final validation loss."""
    main, base = recipe.report.main, recipe.report.baseline
    out = []
    for spec in recipe.students:
        if spec.heal is None:
            continue
        for mixer in spec.mixers:
            group = {name: [r for r in runs.values() if r["student"] == name and r["mixer"] == mixer]
                     for name in (spec.name, main, base)}
            if not group[main] and not group[base]:
                continue
            row = {"student": spec.name, "mixer": mixer, "hybrid": bool(spec.attention_layers),
                   "seeds": {k: [r["seed"] for r in v] for k, v in group.items()}, "comparisons": {}}
            for key in ("ppl", "final_val_loss"):
                values = {k: [_metric(r, key) for r in v] for k, v in group.items()}
                row[key] = {k: spread(v) for k, v in values.items()}
                if spec.attention_layers:         # not the baselines' architecture: values only
                    continue
                row["comparisons"][key] = {
                    f"{spec.name} < {main}": beats(values[spec.name], values[main]),
                    f"{spec.name} < {base}": beats(values[spec.name], values[base]),
                    f"{main} < {base}": beats(values[main], values[base])}
            out.append(row)
    return out


def ablation_rows(recipe: Recipe, runs: dict) -> list[dict]:
    """Per ablation student (groups transfer, hybrid, freeze) and mixer: its final validation loss against the
    main XATL student's of the same mixer, judged on the seed spread (:func:`beats`): with one seed, or with
    overlapping seed ranges, the difference is "not established"."""
    main = recipe.report.main
    out = []
    for spec in (s for s in recipe.students if s.group in ("transfer", "hybrid", "freeze")):
        for mixer in spec.mixers:
            mine = [r["final_val_loss"] for r in runs.values() if r["student"] == spec.name and r["mixer"] == mixer]
            ref = [r["final_val_loss"] for r in runs.values() if r["student"] == main and r["mixer"] == mixer]
            if not mine or not ref:
                continue
            better, why = beats(mine, ref)       # False: the other way round, beyond the spread
            verdict = {True: "lower", False: "higher", None: "not established"}[better]
            out.append({"student": spec.name, "group": spec.group, "mixer": mixer, "loss": spread(mine),
                        "main_loss": spread(ref), "verdict": verdict, "why": why})
    return out


def _difference_noise(a: list, b: list) -> float | None:
    """Two standard errors of (mean of a) - (mean of b), from each run's standard error (None if unknown)."""
    if not a or not b or None in a or None in b:
        return None
    var = sum(e * e for e in a) / len(a) ** 2 + sum(e * e for e in b) / len(b) ** 2
    return 2 * math.sqrt(var)


def _higher(x: float | None, b: float | None, noise: float | None) -> tuple[bool | None, str | None]:
    """Is the XATL zero-shot average ``x`` higher than scratch's ``b``? (None, why) when not measured or when the
    difference is within ``noise`` (two standard errors of the difference): then it is not established."""
    if x is None or b is None:
        return None, "not measured"
    if noise is not None and abs(x - b) <= noise:
        return None, f"difference {x - b:+.3f} within noise ±{noise:.3f}"
    return x > b, None


def _less(a: float | None, b: float | None) -> bool | None:
    """a < b, or None when either was not measured."""
    return None if a is None or b is None else a < b


def collect(recipe: Recipe, run_dir: str | Path) -> dict:
    """Everything the report shows, read from ``run_dir``."""
    run_dir = Path(run_dir)
    t = recipe.train
    tokens_per_step = t.micro_batch_size * t.grad_accum * recipe.data.block_size
    donor_rows = read_metrics(run_dir / "donor" / "train")
    runs = {r.id: _run_entry(recipe, run_dir, r) for r in recipe.runs()}
    donor_flops = ((_result(run_dir, "donor").get("trainer") or {}).get("flops")
                   if recipe.donor.source == "scratch" else None)
    for entry in runs.values():
        base = _baseline_of(runs, recipe, entry)
        entry["baseline"] = base["id"] if base else None
        compared = base is not None and entry["student"] != recipe.report.baseline
        entry["speedup"] = speedup(base["curve"], entry["curve"]).to_dict() if compared else None
        entry["crossing"] = crossing(base["curve"], entry["curve"]).to_dict() if compared else None
        entry["speedup_curve"] = speedup_curve(base["curve"], entry["curve"]) if compared else None
        entry["compute"] = _compute(entry, base, donor_flops) if compared else None
    profile = _result(run_dir, "profile")
    try:
        profiles = json.loads(Path(profile["profile"]).read_text()) if profile.get("profile") else []
    except (OSError, ValueError):
        profiles = []
    prompts = _result(run_dir, "prompts")
    try:
        completions = json.loads(Path(prompts["prompts"]).read_text()) if prompts.get("prompts") else None
    except (OSError, ValueError):
        completions = None
    labels = {"donor": "donor", **{r.id: f"{r.mixer} {r.label}" for r in recipe.runs() if r.seed == r.spec.seeds[0]}}
    stages = {}
    for marker_path in sorted(run_dir.glob(f"**/{DONE}")):
        marker = read_json(marker_path) or {}
        stages[marker.get("stage", str(marker_path.parent))] = marker.get("seconds")
    return {
        "recipe": recipe.name, "description": recipe.description, "target_speedup": recipe.report.target_speedup,
        "budget": {"steps": t.max_steps, "micro_batch_size": t.micro_batch_size, "grad_accum": t.grad_accum,
                   "block_size": recipe.data.block_size, "tokens_per_step": tokens_per_step,
                   "tokens": tokens_per_step * t.max_steps, "lr": t.lr, "warmup_steps": t.warmup_steps,
                   "eval_every": t.eval_every, "eval_batches": t.eval_batches},
        "tokenizer": _result(run_dir, "tokenizer"), "data": _result(run_dir, "data"),
        "donor": _result(run_dir, "donor") | {"curve": [list(p) for p in val_curve(donor_rows)],
                                               "eval": _eval(run_dir, "donor"), "source": recipe.donor.source},
        "runs": runs, "main": _main_rows(recipe, runs), "heal": heal_rows(recipe, runs), "profiles": profiles,
        "sweeps": sweeps(recipe, run_dir), "ablations": ablation_rows(recipe, runs),
        "prompts": completions, "stage_seconds": stages, "long_context": collect_long(run_dir, labels),
    }
