"""Checkpoints: exact resume, atomic writes under failure, NaN stops, keep-last-k, loadable model dirs."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import quick

import xatl
from xatl.errors import TrainingError
from xatl.train import train
from xatl.train.checkpoint import list_checkpoints
from xatl.train.metrics import read_metrics, step_records


class Killed(Exception):
    pass


def _kill_at(step):
    def hook(s, record, model):
        if s == step:
            raise Killed(f"killed after step {s}")
    return hook


def _losses(path):
    return [(r["step"], r["loss"], r.get("val_loss"), r["frozen"]) for r in step_records(path)]


def test_kill_and_resume_gives_the_same_losses(student_dir, data, tmp_path):
    """Uninterrupted vs killed after step 7 (last checkpoint: step 4) and resumed: the same curve to 1e-6,
    through an unfreezing (step:5) that happens after the resume point, with gradient accumulation."""
    kw = dict(max_steps=10, unfreeze="step:5", grad_accum=2, micro_batch_size=2, save_every=4)
    ref = train(quick(student_dir, tmp_path / "ref", **kw), data, progress=False)
    with pytest.raises(Killed):
        train(quick(student_dir, tmp_path / "run", **kw), data, progress=False, on_step=_kill_at(7))
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4]
    resumed = train(quick(student_dir, tmp_path / "run", resume=True, **kw), data, progress=False)
    a, b = _losses(ref.metrics_path), _losses(resumed.metrics_path)
    assert [x[0] for x in b] == list(range(1, 11))                 # records after step 4 replaced, none doubled
    zero = [r for r in read_metrics(resumed.metrics_path) if r["step"] == 0]
    ref_zero = [r for r in read_metrics(ref.metrics_path) if r["step"] == 0]
    assert len(zero) == 1 and zero[0]["tokens"] == 0 and "loss" not in zero[0]      # step 0: evaluated, once
    assert abs(zero[0]["val_loss"] - ref_zero[0]["val_loss"]) <= 1e-6
    for (sa, la, va, fa), (sb, lb, vb, fb) in zip(a, b):
        assert sa == sb and fa == fb and abs(la - lb) <= 1e-6, (sa, la, lb)
        assert (va is None) == (vb is None) and (va is None or abs(va - vb) <= 1e-6)
    assert resumed.unfrozen_after == ref.unfrozen_after == 5
    wa = xatl.XATLForCausalLM.from_pretrained(ref.final_dir).state_dict()
    wb = xatl.XATLForCausalLM.from_pretrained(resumed.final_dir).state_dict()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6


def test_checkpoint_layout_keep_last_and_loadable(student_dir, data, tmp_path):
    result = train(quick(student_dir, tmp_path / "run", max_steps=8, save_every=2, keep_last=2, eval_every=0),
                   data, progress=False)
    steps = [s for s, _ in list_checkpoints(tmp_path / "run")]
    best = int(result.best_checkpoint.name.split("-")[1])
    assert set(steps) == {6, 8} | {best}                            # keep-last-2 plus the best by val loss
    ckpt = result.last_checkpoint
    for f in ("model/config.json", "model/model.safetensors", "model/transfer_report.json", "optimizer.safetensors",
              "rng.safetensors", "trainer_state.json"):
        assert (ckpt / f).is_file(), f
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["run"]["step"] == 8 and state["run"]["position"] == 8 * 4 and state["config_hash"]
    m = xatl.XATLForCausalLM.from_pretrained(ckpt / "model")
    final = xatl.XATLForCausalLM.from_pretrained(result.final_dir)
    assert all(torch.equal(m.state_dict()[k], v) for k, v in final.state_dict().items())
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))   # no temp leftovers


@pytest.mark.parametrize("error", ["oserror", "safetensors"])
def test_failed_checkpoint_write_keeps_the_previous_one(student_dir, data, tmp_path, monkeypatch, error):
    """A full disk mid-checkpoint (as an OSError, or as safetensors' own SafetensorError) is one TrainingError
    line naming the intact previous checkpoint; nothing half-written stays; the run resumes."""
    from safetensors import SafetensorError

    import xatl.train.checkpoint as ck

    real_save = ck.save_tree
    calls = {"n": 0}

    def flaky_save(obj, path):
        calls["n"] += 1
        if calls["n"] == 3:                   # checkpoint 1 = 2 saves (optimizer, rng); the 2nd one dies here
            if error == "oserror":
                raise OSError(28, "No space left on device")
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        return real_save(obj, path)

    monkeypatch.setattr(ck, "save_tree", flaky_save)
    with pytest.raises(TrainingError, match="previous checkpoint .*step-4 is intact; free disk space") as info:
        train(quick(student_dir, tmp_path / "run", max_steps=12), data, progress=False)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(ck, "save_tree", real_save)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))
    xatl.XATLForCausalLM.from_pretrained(tmp_path / "run" / "checkpoints" / "step-4" / "model")
    resumed = train(quick(student_dir, tmp_path / "run", max_steps=12, resume=True), data, progress=False)
    assert resumed.final_step == 12


def test_planted_pickle_in_a_checkpoint_never_runs(student_dir, data, tmp_path):
    """A run directory handed over with a pickle payload in place of its optimizer/RNG state: resuming must not
    execute it (the payload is planted under both the current and the old pickle file names)."""
    import pickle

    kw = dict(max_steps=8, save_every=4)
    run, marker = tmp_path / "run", tmp_path / "pwned"
    with pytest.raises(Killed):
        train(quick(student_dir, run, **kw), data, progress=False, on_step=_kill_at(5))

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    ckpt = run / "checkpoints" / "step-4"
    for name in ("optimizer.safetensors", "rng.safetensors", "optimizer.pt", "rng.pt"):
        (ckpt / name).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(TrainingError, match="is damaged") as info:
        train(quick(student_dir, run, resume=True, **kw), data, progress=False)
    assert not marker.exists() and "\n" not in str(info.value)
    (ckpt / "optimizer.safetensors").unlink()
    with pytest.raises(TrainingError, match="old pickle format"):
        train(quick(student_dir, run, resume=True, **kw), data, progress=False)
    assert not marker.exists()


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(student_dir, data, tmp_path):
    def poison(step, record, model):
        if step == 5:
            with torch.no_grad():
                model.model.norm.weight.fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"loss became nan at step 6 .*last good checkpoint is .*step-4.*"
                                            r"new --out, or in this one with --no-resume --overwrite"):
        train(quick(student_dir, tmp_path / "run", max_steps=10), data, progress=False, on_step=poison)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4]
    good = xatl.XATLForCausalLM.from_pretrained(tmp_path / "run" / "checkpoints" / "step-4" / "model")
    assert torch.isfinite(good.model.norm.weight).all()
    # the advice works: the same --out, a lower lr, --no-resume --overwrite
    again = train(quick(student_dir, tmp_path / "run", max_steps=10, lr=1e-3, resume=False, overwrite=True), data,
                  progress=False)
    assert again.final_step == 10


def test_rerun_of_a_finished_run_changes_nothing(student_dir, data, tmp_path):
    first = train(quick(student_dir, tmp_path / "run", max_steps=4), data, progress=False)
    before = _losses(first.metrics_path)
    again = train(quick(student_dir, tmp_path / "run", max_steps=4), data, progress=False)    # resume="auto"
    assert again.final_step == 4 and again.val_loss == first.val_loss
    assert _losses(again.metrics_path) == before and len(before) == 4


def test_a_second_run_on_the_same_out_is_refused_and_the_first_is_untouched(student_dir, data, tmp_path):
    """Two trainers on one --out: the second is refused in one line (before it removes or prunes anything);
    the first finishes; afterwards the directory is free again."""
    from xatl.errors import OutputExistsError

    seen = {}

    def second(step, record, model):
        if step == 2:
            with pytest.raises(OutputExistsError, match="another training run is working in") as info:
                train(quick(student_dir, tmp_path / "run", max_steps=8, resume=False, overwrite=True), data,
                      progress=False)
            seen["error"] = str(info.value)
            seen["files"] = sorted(p.name for p in (tmp_path / "run").iterdir())

    first = train(quick(student_dir, tmp_path / "run", max_steps=8), data, progress=False, on_step=second)
    assert first.final_step == 8 and "\n" not in seen["error"] and "metrics.jsonl" in seen["files"]
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4, 8]
    again = train(quick(student_dir, tmp_path / "run", max_steps=8, resume=False, overwrite=True), data,
                  progress=False)
    assert again.final_step == 8
