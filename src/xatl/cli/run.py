"""``xatl run``: run a whole study (a recipe) end to end, resumably, and write its report."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

HELP = "run a whole study from a recipe (default: healing SmolLM2 against plain XATL and scratch) and write its report"
DESCRIPTION = """Run every stage of a recipe: tokenizer -> data -> donor -> students (convert + train or heal, for
each mixer x student x seed) -> evaluation -> prompts -> decode cost -> report. Outputs go to OUT/NAME/; the report is
OUT/NAME/report.md with its plots in OUT/NAME/plots/.

Stages whose output is complete (a done.json marker, written last) are skipped, so a run that was interrupted
continues where it stopped (a killed training run resumes from its checkpoints). A stage whose recipe settings
changed is redone, with everything downstream of it.

RECIPE is a YAML file or the name of an embedded recipe: default (`make demo`, under 20 minutes on a 2-core CPU:
SmolLM2-135M-Instruct healed into a hybrid and a pure linear-cost student, against the paper's plain XATL recipe and
training from scratch at the same tokens; --preset seeds: the comparison over two seeds), toy (the tiny
self-trained-donor study: retention/gla/mamba, ablations), smollm2 (plain XATL from SmolLM2, sized for a GPU;
--preset cpu runs it on a CPU with a small budget)."""
EPILOG = """examples:
  xatl run                                   # the embedded default study -> runs/default/report.md
  xatl run toy                               # the tiny self-trained-donor study -> runs/toy/
  xatl run smollm2 --preset cpu              # the real donor, CPU-sized -> runs/smollm2-cpu/
  xatl run my-study.yaml --out results/
  xatl run --set train.max_steps=50 --set students[0].seeds=[0,1]
  xatl run --force students                  # redo every student (and what depends on them)
  xatl run --list                            # the embedded recipes
stages for --force: tokenizer, data, donor, sweep, sweep/<mixer>-<name>-lr<rate>-s<seed>, students,
students/<mixer>-<name>-s<seed>, eval, eval/<model>, prompts, profile, all."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", default=None, metavar="RECIPE",
                   help="recipe YAML file or embedded recipe name (default: default)")
    p.add_argument("--out", default="runs", help="root directory of study outputs (default: runs/)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="redo this stage (and what depends on it) even if done; repeatable")
    p.add_argument("--preset", metavar="NAME", help="apply a preset of the recipe (e.g. cpu); outputs go to "
                   "OUT/NAME-PRESET/")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one recipe field (dotted path, YAML value); repeatable")
    p.add_argument("--list", action="store_true", help="list the embedded recipes and exit")
    p.add_argument("--check", action="store_true", help="validate the recipe, print it resolved and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..experiment import embedded_recipes, load_recipe, recipe_to_dict, run_experiment
    from ..experiment.loader import locate

    if args.list:
        for name in embedded_recipes():
            recipe = load_recipe(name)
            first = recipe.description.strip().splitlines()[0] if recipe.description.strip() else ""
            print(f"{name:12s} {first}")
        return 0
    recipe = load_recipe(args.recipe, preset=args.preset, sets=args.sets)
    if args.check:
        print(f"# {locate(args.recipe)}" + (f" (preset {args.preset})" if args.preset else ""))
        print(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False), end="")
        return 0
    _hint_device(recipe, args)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("xatl.experiment").setLevel(logging.INFO)
    command = "xatl " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["run"] else \
        "xatl run" + (f" {args.recipe}" if args.recipe else "")
    report = run_experiment(recipe, args.out, force=args.force, progress=not args.no_progress, command=command)
    print(f"report: {report}")
    return 0


def _hint_device(recipe, args) -> None:
    import torch

    if "cpu" in (recipe.presets or {}) and args.preset is None and not torch.cuda.is_available() \
            and recipe.device in ("auto", "cuda"):
        print(f"xatl run: note: no GPU here and recipe {recipe.name!r} is sized for one; "
              "`--preset cpu` runs its CPU-sized budget", file=sys.stderr)
