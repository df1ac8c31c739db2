"""``report.md``: the study's results as Markdown with PNG plots, from :func:`xatl.experiment.summary.collect`.

Sections (always present, saying so when a recipe has nothing for one): Setup, Healing, Prompts, Headline: XATL
vs scratch, Speedup where the curves cross, Compute, Learning-rate sweep, Validation loss, Zero-shot, Ablation:
transfer set, Hybrid, Freeze schedules, Decode cost, Seed spread, Stages and timings.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..utils.fs import atomic_write_bytes, atomic_write_json
from . import plots, sysinfo
from .evaluation import HEADLINE
from .long_context import long_figures, section_long
from .speedup import CROSSING_RULE, RULE, spread
from .summary import collect

log = logging.getLogger(__name__)

SECTIONS = ("Setup", "Healing", "Long context", "Prompts", "Headline: XATL vs scratch", "Speedup where the curves cross",
            "Compute", "Learning-rate sweep", "Validation loss", "Zero-shot", "Ablation: transfer set", "Hybrid",
            "Freeze schedules", "Decode cost", "Seed spread", "Stages and timings")
GROUP_SECTIONS = {"transfer": ("Ablation: transfer set", "which donor weights are copied"),
                  "hybrid": ("Hybrid", "keeping some layers' softmax attention (with all its donor weights)"),
                  "freeze": ("Freeze schedules", "when the copied (frozen) weights join training")}


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pm(stats, digits: int = 3) -> str:
    mean, std, n = stats if stats else (None, None, 0)
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f} (n={n})" if std is not None else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _sp(entry: dict) -> str:
    return entry["speedup"]["text"] if entry.get("speedup") else "(baseline)"


def _zs(entry: dict | None) -> float | None:
    return (entry or {}).get("zero_shot_avg")


def _setup_row(st, recipe) -> list[str]:
    """A student's row of the setup table: copy set, freeze schedule and lr (a healed student: heal's own)."""
    if st.heal is not None:
        copy, lr = "`all`", "heal's"
        freeze = "heal: " + (", ".join(f"{k}={v}" for k, v in st.heal.items()) or "its defaults")
    else:
        copy = f"`{st.copy}`"
        freeze = ("frozen, unfreeze " + st.unfreeze) if st.freeze and st.copy != "none" else "all trainable"
        lr = (("sweep " + " / ".join(f"{v:g}" for v in st.lr_sweep)) if st.lr_sweep
              else _f(st.lr or recipe.train.lr, 4))
    return [st.name, st.label or st.name, st.group, ", ".join(st.mixers), copy, str(st.attention_layers or "-"),
            freeze, lr, str(recipe.train_of(st).max_steps), ", ".join(map(str, st.seeds))]


def section_setup(s: dict, recipe) -> str:
    b, d, tok, donor = s["budget"], s["data"], s["tokenizer"], s["donor"]
    tok_line = (f"byte-level BPE of {tok.get('vocab_size')} tokens trained on {tok.get('documents')} training "
                "documents" if tok.get("source") == "train" else f"the donor's own ({tok.get('path')})")
    dt, arch = recipe.donor.train, recipe.donor.architecture
    donor_tokens = dt.max_steps * dt.micro_batch_size * dt.grad_accum * recipe.data.block_size
    donor_line = (f"Llama-style Transformer trained from scratch by this recipe ({arch.num_hidden_layers} layers, "
                  f"hidden {arch.hidden_size}, {arch.num_attention_heads} heads, MLP {arch.intermediate_size}; "
                  f"{dt.max_steps} steps = {donor_tokens:,} tokens, {donor_tokens / max(1, b['tokens']):.1f}x a "
                  f"student's budget); final validation loss {_f(donor.get('final_val_loss'))}"
                  if recipe.donor.source == "scratch" else f"`{recipe.donor.source}` ({donor.get('path')}), used as "
                  "it is")
    rows = [_setup_row(st, recipe) for st in recipe.students]
    return "\n".join([
        f"- Tokenizer: {tok_line}.",
        f"- Data: {', '.join(recipe.data.sources)}; {d.get('train_tokens', 0):,} training tokens in blocks of "
        f"{d.get('block_size')}; {d.get('validation_tokens', 0):,} held-out validation tokens (whole documents, "
        "never trained on).",
        f"- Donor: {donor_line}.",
        f"- Student budget (every student unless its `steps` below differ): {b['steps']} steps x "
        f"{b['tokens_per_step']:,} "
        f"tokens = {b['tokens']:,} tokens; AdamW, peak LR {b['lr']} (cosine, {b['warmup_steps']} warm-up steps); "
        f"validation loss every {b['eval_every']} steps on {b['eval_batches']} fixed batches.",
        f"- Speedup rule: {RULE}", f"- Measured speedup: {CROSSING_RULE}", "",
        _table(["student", "label", "group", "mixers", "copy", "attention layers", "freeze", "lr", "steps", "seeds"],
               rows)])


def _verdict(m: dict) -> str:
    names = {"speedup": "speedup", "lower_loss": "lower validation loss", "higher_zero_shot": "higher zero-shot average"}
    met = [names[k] for k, v in m["checks"].items() if v is True]
    missed = [names[k] for k, v in m["checks"].items() if v is False]
    open_ = [f"{names[k]} ({m.get('undecided', {}).get(k, 'not measured')})" for k, v in m["checks"].items()
             if v is None]
    parts = ([f"meets: {', '.join(met)}."] if met else []) + ([f"misses: {', '.join(missed)}."] if missed else []) \
        + ([f"not established: {', '.join(open_)}."] if open_ else [])
    return " ".join(parts)


def section_headline(s: dict) -> str:
    target = s["target_speedup"]
    rows, verdicts = [], []
    for mixer, m in s["main"].items():
        shown = m["crossings"] if m.get("measured") else m["speedups"]
        scratch = _pm(m.get("scratch_at_xatl_steps") or m["scratch_final"])
        if m.get("baseline_longer"):
            scratch += f" (at XATL's last step; final {_pm(m['scratch_final'])})"
        rows.append([mixer, scratch, _pm(m["xatl_final"]), ", ".join(shown),
                     _pm(m["scratch_zero_shot"]), _pm(m["xatl_zero_shot"]), m["verdict"]])
        verdicts.append(f"- **{mixer}**: {_verdict(m)}")
    if not rows:
        return "No main comparison could be made (missing runs)."
    verdicts += _other_scratch(s)
    return "\n".join([
        f"Target: XATL reaches the scratch student's final validation loss in at most 1/{target:g} of the steps "
        f"(speedup >= {target:g}x), ends at a lower validation loss and a higher zero-shot average. Where the "
        "baseline trains longer and crosses XATL's final loss, the speedup shown is the measured one (next "
        "section), judged on its range over seeds, and the lower-loss check compares XATL with the baseline's "
        "curve at XATL's last step (equal steps and tokens).", "",
        _table(["mixer", "scratch val loss", "XATL final val loss", "speedup (per seed)",
                "scratch zero-shot avg", "XATL zero-shot avg", "targets met"], rows), "", *verdicts, "",
        "Targets met: yes = all three established; no = one missed; undecided = none missed but one not "
        "established (not measured, or a zero-shot difference within two standard errors). A speedup marked '>=' is "
        "a lower bound: XATL was already below the target at its first evaluation (step "
        f"{s['budget']['eval_every']}); `train.eval_every` sets the resolution.", "",
        "![validation loss, XATL vs scratch](plots/curves_main.png)"])


def _x(v, digits: int = 2) -> str:
    return "-" if v is None else "inf" if v == float("inf") else f"{v:.{digits}f}x"


def section_crossing(s: dict, recipe) -> str:
    target = s["target_speedup"]
    rows, lines = [], []
    for mixer, m in s["main"].items():
        ok, why = m["crossing_verdict"]
        rows.append([mixer, ", ".join(m["crossings"]), _pm(m["crossing"], 2),
                     "-" if not m["crossing_range"] else f"{m['crossing_range'][0]:.2f}-{m['crossing_range'][1]:.2f}x",
                     "yes" if ok else "no" if ok is False else "not established"])
        lines.append(f"- **{mixer}** against the paper's {target:g}x: {why}.")
    if not rows:
        return "No main comparison could be made (missing runs)."
    if not any(m["measured"] for m in s["main"].values()):
        lines.append("- No scratch run reached the XATL students' final loss within its budget, so no speedup is "
                     "measured here: give the baseline more steps (`students[].train.max_steps`) until it crosses.")
    plotted = plots.speedup_figure(s, recipe.report.main, Path(s["_plots"]) / "speedup_curve.png", target)
    return "\n".join([
        f"Rule: {CROSSING_RULE}", "",
        _table(["mixer", "speedup at XATL's final loss (per seed)", "mean ± sd", "range", f">= {target:g}x"], rows),
        "", *lines, "",
        "Below: the same rule over a range of targets, each XATL evaluation that sets a new low (step 0 included: "
        "'inf' there means XATL starts below a loss scratch needs steps to reach).", "",
        "![speedup over target losses](plots/speedup_curve.png)" if plotted else "(no crossing to plot)"])


def section_compute(s: dict, recipe) -> str:
    d = s["donor"]
    donor_flops = (d.get("trainer") or {}).get("flops")
    b = s["budget"]
    if recipe.donor.source != "scratch":
        return "\n".join([
            f"The donor (`{recipe.donor.source}`) was pretrained elsewhere; its compute is not known here and is not "
            "charged. With a pre-existing donor the paper's convention, which takes the donor as given, is the "
            "natural one: the question is what it costs to turn it into a linear-cost model, and every student "
            f"here spends {b['tokens']:,} tokens (FLOPs per run in the tables).",
            "", "Per-run training FLOPs are the trainer's count (`summary.json`, `runs.*.flops`)."])
    rows = [["donor (pretraining, charged end to end only)", f"{d.get('trainer', {}).get('tokens') or '-'}",
             f"{donor_flops:.3e}" if donor_flops else "-"]]
    for r in s["runs"].values():
        rows.append([r["id"], f"{r['tokens']:,}" if r.get("tokens") else "-",
                     f"{r['flops']:.3e}" if r.get("flops") else "-"])
    crow = []
    for mixer, m in s["main"].items():
        verdict = m.get("scratch_final_vs_xatl_final") or (None, "")
        crow.append([mixer, _pm(m["paper_flops_ratio"], 2), _pm(m["end_to_end"], 2),
                     "-" if not m["end_to_end_range"] else
                     f"{m['end_to_end_range'][0]:.2f}-{m['end_to_end_range'][1]:.2f}",
                     _yes(verdict)])
    return "\n".join([
        "Training FLOPs are the trainer's count (forward + backward matmuls of the trainable weights, per token). "
        "Two conventions: the **paper's** takes the donor as given and compares only the students' FLOPs to reach "
        "the target (XATL's final loss); **end to end** charges the donor's pretraining to XATL: ratio = scratch "
        "FLOPs to the target / (donor FLOPs + XATL FLOPs to it). Above 1, XATL is cheaper even paying for the donor; "
        "below 1, training the linear-cost model from scratch on the donor's budget would have been cheaper.", "",
        _table(["mixer", "paper's convention: scratch / XATL FLOPs", "end to end: scratch / (donor + XATL)",
                "end-to-end range", "XATL's final loss below scratch's final loss (scratch trained on the longer "
                "budget)?"], crow), "",
        _table(["run", "tokens", "training FLOPs"], rows)])


def section_sweep(s: dict) -> str:
    sw = s.get("sweeps") or []
    if not sw:
        return ("This recipe sweeps no learning rate (a student's `lr_sweep` lists the rates to try; each arm then "
                "uses its own best).")
    rows, notes = [], []
    for x in sw:
        cells = " / ".join(f"{r['lr']:g}: {_f(r['final_val_loss'])}" for r in x["runs"])
        rows.append([x["mixer"], x["label"], str(x["seed"]), cells, f"{x['best_lr']:g}"])
        if x["edge"]:
            notes.append(f"- {x['mixer']} {x['student']}: the best rate is at the edge of the sweep; a wider sweep "
                         "might find a better one.")
    plots.sweep_figure(s, Path(s["_plots"]) / "lr_sweep.png")
    return "\n".join([
        "Each swept student tries its rates at its first seed on its own budget; every seed of it then trains at "
        "the rate with the lowest final validation loss (the first seed's main run is that sweep run). The sweep "
        "selects on the first seed, which favours that seed slightly, for XATL and scratch alike.", "",
        _table(["mixer", "student", "seed", "final val loss per lr", "used"], rows), "", *notes,
        "![learning-rate sweep](plots/lr_sweep.png)"])


def _other_scratch(s: dict) -> list[str]:
    """Lines comparing the scratch baseline with other from-scratch runs of the same mixer (e.g. other learning
    rates): evidence that the baseline is not handicapped."""
    lines = []
    base_runs = [r for r in s["runs"].values() if r.get("speedup") is None and r["copy"].strip() == "none"]
    for base in base_runs:
        others = [r for r in s["runs"].values() if r["copy"].strip() == "none" and r is not base
                  and r["mixer"] == base["mixer"] and r["seed"] == base["seed"] and r.get("speedup") is not None]
        if others:
            listed = "; ".join(f"{r['label']} (lr {r['lr']:g}) {_f(r['final_val_loss'])}" for r in others)
            lines.append(f"- Other from-scratch runs of {base['mixer']} (seed {base['seed']}): {listed}; the baseline "
                         f"(lr {base['lr']:g}) ends at {_f(base['final_val_loss'])}.")
    return lines


def section_loss(s: dict) -> str:
    rows = []
    for r in s["runs"].values():
        base = s["runs"].get(r["baseline"]) if r.get("baseline") else None
        delta = (r["final_val_loss"] - base["final_val_loss"]) if base and r["final_val_loss"] is not None \
            and base["final_val_loss"] is not None and base is not r else None
        rows.append([r["id"], r["label"], r["group"], _f(r["final_val_loss"]), _f(delta) if delta is not None else "-",
                     _sp(r), str(r["unfreeze_step"] if r["unfreeze_step"] is not None else "-"),
                     _f(r["seconds"], 0)])
    out = [_table(["run", "student", "group", "final val loss", "vs scratch", "speedup", "unfrozen at step",
                   "train+convert s"], rows)]
    if s["donor"].get("curve"):
        out += ["", f"Donor final validation loss: {_f(s['donor'].get('final_val_loss'))} "
                "(trained longer than the students; see its curve below).", "", "![donor](plots/donor.png)"]
    return "\n".join(out)


def section_zero_shot(s: dict) -> str:
    entries = [("donor", s["donor"].get("eval"))] + [(r["id"], r["eval"]) for r in s["runs"].values()]
    tasks = [t for t in HEADLINE if any(e and t in e["tasks"] for _, e in entries)]
    if not any(e for _, e in entries):
        return "No evaluation results."
    header = (["model", "ppl", "ppl / donor", "bits/byte"] + [f"{t} ({HEADLINE[t]})" for t in tasks]
              + ["zero-shot avg", "relative to donor"])
    rows, at_chance = [], False
    for name, e in entries:
        e = e or {"tasks": {}}
        at_chance |= name != "donor" and bool(e["tasks"]) and not e.get("relative")
        rows.append([name, _f(e.get("ppl"), 2), _f(e.get("ppl_ratio")) if name != "donor" else "1",
                     _f(e.get("bits_per_byte"))] + [_f(e["tasks"].get(t)) for t in tasks]
                    + [_f(e.get("zero_shot_avg")), _f(e.get("relative_avg")) if name != "donor" else "1"])
    notes = ["0-shot log-likelihood scoring with lm-evaluation-harness definitions, headline metric per task as "
             "named; ppl = perplexity of the held-out validation documents. Relative to donor = mean over tasks of "
             "(student - chance) / (donor - chance): 1 is the donor's level, 0 chance; it is shown only for tasks "
             "where the donor is more than two standard errors above chance."]
    if at_chance:
        notes.append("Here the donor is not clearly above chance on the zero-shot tasks, so no relative score "
                     "is meaningful and zero-shot differences between students are within noise (each task's "
                     "stderr is in eval/*/results.json); held-out perplexity (ppl / donor) is the comparison that "
                     "separates them.")
    return "\n".join([" ".join(notes), "", _table(header, rows)])


def section_group(s: dict, group: str, recipe) -> str:
    title, what = GROUP_SECTIONS[group]
    members = [r for r in s["runs"].values() if r["group"] == group]
    if not members:
        return f"This recipe has no {group} students ({what})."
    mixers = list(dict.fromkeys(r["mixer"] for r in members))
    refs = [recipe.report.baseline, recipe.report.main]
    shown = [r for r in s["runs"].values() if r["mixer"] in mixers and (r["group"] == group or r["student"] in refs)]
    rows = [[r["id"], r["label"], f"`{r['copy']}`", str(r["attention_layers"] or "-"),
             (r["unfreeze"] if r["freeze"] else "all trainable"),
             str(r["unfreeze_step"] if r["unfreeze_step"] is not None else "-"), _f(r["final_val_loss"]), _sp(r),
             _f(_zs(r["eval"]))] for r in shown]
    names = list(dict.fromkeys(refs + [r["student"] for r in members]))
    plots.curves_figure(s, names, Path(s["_plots"]) / f"curves_{group}.png", f"{title}: {what}", mixers)
    verdicts = [f"- {a['mixer']} {a['student']}: final val loss {_pm(a['loss'])} against "
                f"{recipe.report.main}'s {_pm(a['main_loss'])}: {a['verdict']} ({a['why']})"
                for a in s.get("ablations", []) if a["group"] == group]
    return "\n".join([f"Students that differ from `{recipe.report.main}` in {what}, with the main XATL student and "
                      "the scratch baseline of the same mixer for reference.", "",
                      _table(["run", "student", "copy", "attention layers", "freeze", "unfrozen at step",
                              "final val loss", "speedup", "zero-shot avg"], rows), "",
                      "Against the main XATL student, on the spread over seeds (a difference counts only when the "
                      "seed ranges do not overlap, with two or more seeds each):", "", *verdicts, "",
                      f"![{title}](plots/curves_{group}.png)"])


def _method(r: dict) -> str:
    if r.get("healed"):
        h = r.get("heal") or {}
        return (f"heal: {h.get('align_steps')} attention-transfer + {h.get('lm_steps')} end-to-end steps "
                f"(KD + LM, stage 2 {(h.get('settings') or {}).get('stage2', 'lora')})")
    if r["copy"].strip() == "none":
        return "scratch: fresh init, LM loss, all trainable"
    return f"plain XATL: copy `{r['copy']}`, LM loss, " + (f"frozen, unfreeze {r['unfreeze']}" if r["freeze"]
                                                            else "all trainable")


def _yes(verdict) -> str:
    ok, why = verdict
    return f"{'yes' if ok else 'no' if ok is False else 'not established'} ({why})"


def section_heal(s: dict, recipe) -> str:
    healed = [r for r in s["runs"].values() if r.get("healed")]
    if not healed:
        return "This recipe has no healed students (a student with `heal:` set is healed with `xatl heal`)."
    main, base = recipe.report.main, recipe.report.baseline
    mixers = {r["mixer"] for r in healed}
    shown = [r for r in s["runs"].values() if r["mixer"] in mixers and (r.get("healed") or r["student"] in (main, base))]
    donor = s["donor"].get("eval") or {}
    rows = [["donor", f"`{recipe.donor.source}`, used as it is", "-", "-", "pretrained elsewhere",
             _f(donor.get("ppl"), 2), "1", _f(donor.get("zero_shot_avg")), "1", "-"]]
    for r in shown:
        e = r["eval"] or {}
        rows.append([r["id"], _method(r), f"{r['tokens']:,}" if r.get("tokens") else "-", _f(r.get("wall"), 0),
                     f"{r['flops']:.2e}" if r.get("flops") else "-", _f(e.get("ppl"), 2), _f(e.get("ppl_ratio")),
                     _f(e.get("zero_shot_avg")), _f(e.get("margin_ratio")), _f(r["final_val_loss"])])
    lines = []
    for h in s.get("heal", []):
        for key, label in (("ppl", "held-out perplexity"), ("final_val_loss", "final validation loss")):
            for what, verdict in h["comparisons"].get(key, {}).items():
                lines.append(f"- {h['mixer']}, {label}: {what}? {_yes(verdict)}")
    names = list(dict.fromkeys([base, main] + [r["student"] for r in healed]))
    plots.curves_figure(s, names, Path(s["_plots"]) / "curves_heal.png",
                        "validation loss from step 0:\nhealed, plain XATL and scratch at equal tokens", sorted(mixers))
    b = s["budget"]
    return "\n".join([
        f"Every student trains on the same {b['tokens']:,} tokens ({b['steps']} steps x {b['tokens_per_step']:,}). "
        f"Healed students (`xatl heal`) spend them on attention transfer (each mixer learns the donor's attention "
        "output on the donor's own hidden states; no backward through MLPs or across layers) and then distillation "
        "from the donor's logits plus the LM loss; the paper's plain XATL recipe copies the donor's weights and "
        "trains on the LM loss with the Loss Improvement Threshold unfreeze; scratch starts from a fresh init. "
        "ppl = perplexity of held-out validation documents (never trained on); share of donor margin = (student's "
        "zero-shot average - chance) / (donor's average - chance), shown where the donor's average is more than two "
        "standard errors above chance; "
        "train s = wall-clock seconds of training (evaluations included); FLOPs = the trainer's count.", "",
        _table(["model", "method", "tokens", "train s", "FLOPs", "ppl", "ppl / donor", "zero-shot avg",
                "share of donor margin", "final val loss"], rows), "",
        "Lower is better. A difference counts only when the seed ranges do not overlap (two or more seeds each):",
        "", *(lines or ["- (no comparison: no healed student without softmax layers, or no baselines)"]), "",
        "![healing curves](plots/curves_heal.png)"])


def section_prompts(s: dict) -> str:
    p = s.get("prompts")
    if not p:
        return "No prompts were run (prompts.enabled is false or the list is empty)."
    out = [f"Greedy continuations ({p['max_new_tokens']} new tokens at most) of the same prompts; tok/s = decode "
           "speed of that generation (prefill included, batch 1).", ""]
    for i, prompt in enumerate(p["prompts"]):
        out.append(f"**{prompt}**")
        out.append("")
        for m in p["models"]:
            c = m["completions"][i]
            text = c["text"].replace("\n", " ").strip() or "(nothing)"
            out.append(f"- *{m['model']}* ({c['tokens_per_s']:.0f} tok/s): {text}")
        out.append("")
    return "\n".join(out).rstrip()


def section_decode(s: dict) -> str:
    if not s.get("profiles"):
        return "Decode cost was not measured (profile.enabled is false)."
    from ..eval.profile import format_profile_table

    return "\n".join([
        "Prefill random tokens to each context length, then time single-token decode steps with the cache "
        "(median); cache = memory the model holds after the prefill. Students keep a fixed-size recurrent state; "
        "the donor's KV cache grows with the context.", "", "```", format_profile_table(s["profiles"]), "```", "",
        "![decode latency](plots/decode_latency.png) ![cache memory](plots/cache_memory.png)"])


def section_seeds(s: dict) -> str:
    groups: dict[tuple, list] = {}
    for r in s["runs"].values():
        groups.setdefault((r["mixer"], r["student"]), []).append(r)
    multi = {k: v for k, v in groups.items() if len(v) > 1}
    if not multi:
        return "Every run used one seed, so no spread can be shown; raise `seeds` in the recipe to see it."
    rows = []
    for (mixer, student), rs in multi.items():
        sp = [r["speedup"]["speedup"] for r in rs if r.get("speedup") and r["speedup"]["speedup"] is not None]
        bound = any(r.get("speedup") and r["speedup"]["lower_bound"] for r in rs)
        measured = [r["crossing"]["speedup"] for r in rs if (r.get("crossing") or {}).get("speedup") is not None]
        rows.append([mixer, student, ", ".join(str(r["seed"]) for r in rs), _pm(spread([r["final_val_loss"] for r in rs])),
                     (">= " if bound else "") + _pm(spread(sp), 2) if sp else "-",
                     _pm(spread(measured), 2) if measured else "-",
                     _pm(spread([(r["eval"] or {}).get("ppl") for r in rs]), 2),
                     _pm(spread([_zs(r["eval"]) for r in rs]))])
    return ("Mean ± sample standard deviation over seeds. Speedup at equal budgets = the old rule (scratch's final "
            "loss as the target); measured = at XATL's final loss, where a longer baseline crosses it.\n\n" + _table(
                ["mixer", "student", "seeds", "final val loss", "speedup at equal budgets", "measured speedup",
                 "held-out ppl", "zero-shot avg"], rows))


def section_stages(s: dict, invocation: list[dict]) -> str:
    rows = [[name, _f(sec, 1)] for name, sec in s["stage_seconds"].items()]
    total = sum(v for v in s["stage_seconds"].values() if v)
    counts: dict[str, int] = {}
    for e in invocation:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    now = ", ".join(f"{n} {status}" for status, n in counts.items()) + " stages" if counts else "nothing ran"
    if counts.get("skipped"):
        now += " (skipped = done by an earlier invocation with the same inputs)"
    return "\n".join([f"Seconds per stage when it ran (total {total:.0f} s = {total / 60:.1f} min). "
                      f"This invocation: {now}.", "", _table(["stage", "seconds"], rows)])


def render(s: dict, recipe, command: str, machine: dict, invocation: list[dict]) -> str:
    head = [f"# XATL study `{s['recipe']}`", "", s["description"].strip(), "",
            f"- Command: `{command}`", f"- Machine: {sysinfo.describe_machine(machine)}", f"- Date: {sysinfo.now()}",
            "- Packages: " + ", ".join(f"{k} {v}" for k, v in sysinfo.versions().items()), ""]
    bodies = {"Setup": section_setup(s, recipe), "Healing": section_heal(s, recipe),
              "Long context": section_long(s, recipe), "Prompts": section_prompts(s),
              "Headline: XATL vs scratch": section_headline(s),
              "Speedup where the curves cross": section_crossing(s, recipe), "Compute": section_compute(s, recipe),
              "Learning-rate sweep": section_sweep(s),
              "Validation loss": section_loss(s), "Zero-shot": section_zero_shot(s),
              **{title: section_group(s, g, recipe) for g, (title, _) in GROUP_SECTIONS.items()},
              "Decode cost": section_decode(s), "Seed spread": section_seeds(s),
              "Stages and timings": section_stages(s, invocation)}
    return "\n".join(head + [f"## {name}\n\n{bodies[name]}\n" for name in SECTIONS])


def write_report(study, command: str | None = None) -> Path:
    """Collect the numbers, draw the plots, write ``report.md`` and ``summary.json``; -> the report's path."""
    run_dir = study.dir
    summary = collect(study.recipe, run_dir)
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    summary["_plots"] = str(plot_dir)
    main, base = study.recipe.report.main, study.recipe.report.baseline
    plots.curves_figure(summary, [base, main], plot_dir / "curves_main.png",
                        "validation loss from step 0: XATL vs scratch" + (
                            "" if any(m.get("baseline_longer") for m in summary["main"].values())
                            else " at equal tokens and steps"))
    plots.donor_figure(summary, plot_dir / "donor.png")
    plots.decode_figures(summary, plot_dir)
    long_figures(summary.get("long_context"), plot_dir)
    machine = sysinfo.machine()
    text = render(summary, study.recipe, command or f"xatl run {study.recipe.name}", machine, study.runner.log)
    summary.pop("_plots")
    summary["machine"], summary["versions"] = machine, sysinfo.versions()
    atomic_write_json(run_dir / "summary.json", summary)
    atomic_write_bytes(run_dir / "report.md", text.encode())
    log.debug("report: %s", run_dir / "report.md")
    return run_dir / "report.md"
