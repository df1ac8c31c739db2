"""The experiment: recipes that describe a whole XATL-vs-scratch study, the resumable stages that run it, and its
report (``xatl run``).

    from xatl.experiment import load_recipe, run_experiment
    report = run_experiment(load_recipe("default"), "runs")       # runs/default/report.md
"""

from .loader import embedded_recipes, load_recipe, parse_recipe, recipe_to_dict
from .pipeline import Study, run_experiment
from .schema import GROUPS, Recipe, StudentRun, StudentSpec
from .speedup import RULE, Speedup, speedup, steps_to_reach
from .stages import StageRunner
from .training import TrainJob, default_trainer, read_metrics, val_curve

__all__ = ["GROUPS", "RULE", "Recipe", "Speedup", "StageRunner", "Study", "StudentRun", "StudentSpec", "TrainJob",
           "default_trainer", "embedded_recipes", "load_recipe", "parse_recipe", "read_metrics", "recipe_to_dict",
           "run_experiment", "speedup", "steps_to_reach", "val_curve"]
