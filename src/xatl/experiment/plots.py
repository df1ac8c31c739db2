"""PNG figures of a study (matplotlib, Agg backend): validation-loss curves per mixer, XATL against scratch, and
per ablation group; decode cost comes from :func:`xatl.eval.profile.plot_profiles`."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_figure(summary: dict, students: list[str], path: Path, title: str, mixers: list[str] | None = None) -> Path:
    """One panel per mixer: the validation-loss curves of ``students`` (every seed). Where a longer baseline
    crosses a run's final loss (the measured speedup), a dotted line from where the run first reaches its final
    loss to where scratch does (x); otherwise the scratch final loss as a dashed line and where each non-scratch
    run first reaches it."""
    plt = _plt()
    runs = [r for r in summary["runs"].values() if r["student"] in students and r["curve"]]
    mixers = mixers or list(dict.fromkeys(r["mixer"] for r in runs))
    fig, axes = plt.subplots(1, max(1, len(mixers)), figsize=(4.6 * max(1, len(mixers)), 3.8), dpi=110,
                             squeeze=False)
    colors = {name: f"C{i}" for i, name in enumerate(students)}
    for ax, mixer in zip(axes[0], mixers):
        for r in (r for r in runs if r["mixer"] == mixer):
            steps, losses = zip(*r["curve"])
            first = r["seed"] == min(x["seed"] for x in runs if x["student"] == r["student"] and x["mixer"] == mixer)
            ax.plot(steps, losses, color=colors[r["student"]], alpha=1.0 if first else 0.45, lw=1.6,
                    label=r["label"] if first else None)
            cross = r.get("crossing") or {}
            if cross.get("reached") and cross.get("scratch_steps"):    # measured: where scratch crosses XATL's loss
                ax.plot([cross["xatl_steps"], cross["scratch_steps"]], [cross["target_loss"]] * 2, ":",
                        color=colors[r["student"]], lw=0.9, alpha=1.0 if first else 0.45)
                ax.plot([cross["scratch_steps"]], [cross["target_loss"]], "x", color="k", ms=6,
                        label="scratch reaches XATL's final loss" if first else None)
                continue
            sp = r.get("speedup") or {}
            if first and sp.get("reached") and sp.get("xatl_steps") is not None:
                bound = sp.get("lower_bound")       # already below at its first evaluation: mark that point
                ax.plot([sp["xatl_steps"]], [losses[0] if bound else sp["target_loss"]], "v" if bound else "o",
                        color=colors[r["student"]], ms=6 if bound else 5, mfc="none" if bound else None)
        measured = any((r.get("crossing") or {}).get("reached") for r in runs if r["mixer"] == mixer)
        target = None if measured else next(
            (r["speedup"]["target_loss"] for r in runs if r["mixer"] == mixer and r.get("speedup")
             and r["speedup"].get("target_loss") is not None), None)
        if target is not None:
            ax.axhline(target, ls="--", color="gray", lw=0.9, label="scratch final")
        _zoom(ax, [r for r in runs if r["mixer"] == mixer])
        _panel(ax, mixer, "step", "validation loss")
    return _save(plt, fig, path, title)


def _zoom(ax, runs: list[dict]) -> None:
    """Clip the y axis so the early, very high losses of scratch runs do not flatten the interesting part."""
    losses = [loss for r in runs for _, loss in r["curve"]]
    if not losses:
        return
    finals = [r["curve"][-1][1] for r in runs]
    low, high = min(losses), max(losses)
    top = min(high, max(finals) + 2.5 * (max(finals) - low + 0.05))
    ax.set_ylim(low - 0.05 * (top - low + 1e-9), top + 0.02 * (top - low + 1e-9))


def donor_figure(summary: dict, path: Path) -> Path | None:
    curve = summary["donor"].get("curve") or []
    if not curve:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4), dpi=110)
    steps, losses = zip(*curve)
    ax.plot(steps, losses, color="k")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title("donor (softmax Transformer) trained from scratch", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def decode_figures(summary: dict, out_dir: Path) -> list[Path]:
    if not summary.get("profiles"):
        return []
    from ..eval.profile import plot_profiles

    return plot_profiles(summary["profiles"], out_dir)


def speedup_figure(summary: dict, main: str, path: Path, target: float) -> Path | None:
    """One panel per mixer: the speedup over target losses ("scratch needs S steps to reach the loss XATL has at
    step k": S / k) for every seed of ``main``, with the paper's ``target`` as a line. Points where scratch never
    reaches the loss are left out (no number is claimed there)."""
    runs = [r for r in summary["runs"].values() if r["student"] == main and r.get("speedup_curve")]
    points = {r["id"]: [(p["target_loss"], p["speedup"]) for p in r["speedup_curve"] if p["speedup"]] for r in runs}
    if not any(points.values()):
        return None
    plt = _plt()
    mixers = list(dict.fromkeys(r["mixer"] for r in runs))
    fig, axes = plt.subplots(1, len(mixers), figsize=(4.6 * len(mixers), 3.6), dpi=110, squeeze=False)
    for ax, mixer in zip(axes[0], mixers):
        for i, r in enumerate(r for r in runs if r["mixer"] == mixer):
            if points[r["id"]]:
                xs, ys = zip(*points[r["id"]])
                ax.plot(xs, ys, "o-", color=f"C{i}", ms=3, lw=1.2, label=f"seed {r['seed']}")
        ax.axhline(target, ls="--", color="gray", lw=0.9, label=f"paper's {target:g}x")
        ax.invert_xaxis()
        _panel(ax, mixer, "target validation loss (XATL's, as it trains)", "speedup (scratch steps / XATL steps)")
    return _save(plt, fig, path, "speedup measured where the curves cross")


def sweep_figure(summary: dict, path: Path) -> Path | None:
    """One panel per swept student and mixer: the validation-loss curve of every learning rate tried."""
    sweeps = summary.get("sweeps") or []
    if not sweeps:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.0 * len(sweeps), 3.4), dpi=110, squeeze=False)
    for ax, sw in zip(axes[0], sweeps):
        for i, r in enumerate(sw["runs"]):
            if r["curve"]:
                steps, losses = zip(*r["curve"])
                best = r["lr"] == sw["best_lr"]
                ax.plot(steps, losses, color=f"C{i}", lw=2.0 if best else 1.1,
                        label=f"lr {r['lr']:g}" + (" (best)" if best else ""))
        _zoom(ax, [r for r in sw["runs"] if r["curve"]])
        _panel(ax, f"{sw['mixer']} {sw['student']} (seed {sw['seed']})", "step", "validation loss")
    return _save(plt, fig, path, "learning-rate sweep")


def _panel(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(plt, fig, path: Path, title: str) -> Path:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
