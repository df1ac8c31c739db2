"""``xatl heal`` on a tiny trained donor: attention transfer really lowers the per-layer alignment error and the
held-out loss; a killed run resumes to the same result; bad --out and settings are refused up front."""

from __future__ import annotations

import json

import pytest
import torch
from heal_helpers import heal_with_alignment_probe, periodic_data, save_donor, trained_donor, val_losses

from xatl.errors import ConfigError, OutputExistsError
from xatl.heal import HealConfig, heal


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory):
    return save_donor(tmp_path_factory.mktemp("donor") / "periodic")


def _cfg(donor_dir, out, **kw):
    # sinks=0: on 32-token blocks of the periodic donor, 4 sinks are an eighth of every block, and attention transfer
    # then lowers layer 1's alignment error by 4% instead of 15% (decay and the position-free linear part stay);
    # sparse_cache=0: LoLA's 64 pairs would hold whole blocks
    base = dict(donor=str(donor_dir), out_dir=str(out), mixer="lolcats",
                mixer_options={"window": 2, "chunk_size": 8, "sinks": 0, "sparse_cache": 0}, budget="16steps", block_size=32, micro_batch_size=8,
                eval_every=4, eval_batches=2, eval_documents=0, lora_rank=4)
    base.update(kw)
    return HealConfig(**base)


def test_the_tiny_donor_has_learnt_its_task():
    _, loss = trained_donor()
    assert loss < 2.0          # ln(98) = 4.6 at chance; only attention over the period gets below ~3


def test_attention_transfer_lowers_alignment_error_and_heldout_loss(donor_dir, tmp_path):
    donor, _ = trained_donor()
    cfg = _cfg(donor_dir, tmp_path / "run", budget="40steps", align_fraction=0.75, eval_every=10)
    result, before, after = heal_with_alignment_probe(cfg, donor)
    assert result.plan["align_steps"] == 30 and result.plan["lm_steps"] == 10
    print("alignment error per layer, before/after:", before, after)
    assert all(a < 0.85 * b for a, b in zip(after, before)), (before, after)
    val = val_losses(tmp_path / "run")
    assert 0 in val and val[30] < val[0] - 0.2, val         # step 0 is measured; transfer alone lowers it
    assert val[40] < val[30]                                # and stage 2 lowers it further


def test_a_killed_heal_resumes_to_the_same_result(donor_dir, tmp_path):
    donor, _ = trained_donor()
    ref = heal(_cfg(donor_dir, tmp_path / "ref"), donor=donor, dataset=periodic_data(), progress=False)

    def kill(step, record, model):
        if step == 11:
            raise Killed()

    with pytest.raises(Killed):
        heal(_cfg(donor_dir, tmp_path / "run"), donor=donor, dataset=periodic_data(), progress=False, on_step=kill)
    assert json.loads((tmp_path / "run" / "heal.json").read_text())["status"] == "training"
    again = heal(_cfg(donor_dir, tmp_path / "run"), donor=donor, dataset=periodic_data(), progress=False)
    assert again.plan == ref.plan
    a, b = val_losses(tmp_path / "ref"), val_losses(tmp_path / "run")
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a), (a, b)
    done = heal(_cfg(donor_dir, tmp_path / "run"), donor=donor, dataset=periodic_data(), progress=False)
    assert done.results == again.results                    # a finished run is not trained again


def test_a_heal_killed_while_planning_starts_over_without_overwrite(donor_dir, tmp_path, monkeypatch):
    import xatl.heal.run as run_module

    donor, _ = trained_donor()

    def killed_in_calibration(*args, **kwargs):
        raise Killed()

    with monkeypatch.context() as m:
        m.setattr(run_module, "calibrate", killed_in_calibration)
        with pytest.raises(Killed):
            heal(_cfg(donor_dir, tmp_path / "run", budget="20s"), donor=donor, dataset=periodic_data(),
                 progress=False)
    saved = json.loads((tmp_path / "run" / "heal.json").read_text())
    assert saved["status"] == "planning" and (tmp_path / "run" / "student").is_dir()
    done = heal(_cfg(donor_dir, tmp_path / "run", budget="20s"), donor=donor, dataset=periodic_data(), progress=False)
    assert done.plan["align_steps"] >= 1 and (tmp_path / "run" / "train" / "final" / "config.json").is_file()
    with pytest.raises(OutputExistsError, match="another heal run"):       # other settings still need --overwrite
        heal(_cfg(donor_dir, tmp_path / "run", budget="4steps"), donor=donor, dataset=periodic_data(), progress=False)


def test_heal_refuses_a_foreign_directory_and_other_settings(donor_dir, tmp_path):
    donor, _ = trained_donor()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="holds files heal did not write"):
        heal(_cfg(donor_dir, foreign, overwrite=True), donor=donor, dataset=periodic_data(), progress=False)
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    run = tmp_path / "run"
    heal(_cfg(donor_dir, run, budget="2steps"), donor=donor, dataset=periodic_data(), progress=False)
    with pytest.raises(OutputExistsError, match="another heal run .*--overwrite"):
        heal(_cfg(donor_dir, run, budget="4steps"), donor=donor, dataset=periodic_data(), progress=False)
    heal(_cfg(donor_dir, run, budget="4steps", overwrite=True), donor=donor, dataset=periodic_data(), progress=False)
    assert max(val_losses(run)) == 4


def test_every_layer_softmax_is_refused(donor_dir, tmp_path):
    donor, _ = trained_donor()
    with pytest.raises(ConfigError, match="nothing to heal"):
        heal(_cfg(donor_dir, tmp_path / "run", attention_layers=[0, 1]), donor=donor, dataset=periodic_data(),
             progress=False)


def test_wall_clock_budget_is_calibrated_and_recorded(donor_dir, tmp_path):
    donor, _ = trained_donor()
    result = heal(_cfg(donor_dir, tmp_path / "run", budget="20s", eval_every=0), donor=donor,
                  dataset=periodic_data(), progress=False)
    cal = result.plan["calibration"]
    assert cal["align_step_s"] > 0 and cal["lm_step_s"] > 0 and result.plan["align_steps"] >= 1
    expected = (20 - cal["seconds"]) / 2
    assert result.plan["align_steps"] == pytest.approx(expected / cal["align_step_s"], rel=0.2, abs=2)
    assert torch.is_grad_enabled()


def test_cli_flags_come_from_the_config(capsys):
    from xatl.cli.heal import config_from_args
    from xatl.cli.main import build_parser, main

    args = build_parser("heal").parse_args(["heal", "--donor", "d", "--out", "o", "--mixer-option", "window=32",
                                            "--attention-layers", "0,5", "--copied-lr", "none"])
    cfg = config_from_args(args)
    default = HealConfig(donor="d", out_dir="o")
    assert cfg.mixer_options == {"window": 32, "decay_span": 256, "linear_rope": False, "sinks": 4,   # + heal's
                                 "sparse_cache": 192, "cache_while_training": False,
                                 "sink_position_limit": default.block_size - 1,          # the trained positions
                                 "cache_position_limit": default.block_size - 1,
                                 "logn_scale": default.block_size}                       # sharpened past them
    assert cfg.attention_layers == [0, 5] and cfg.copied_lr is None
    plain = config_from_args(build_parser("heal").parse_args(["heal", "--donor", "d", "--out", "o", "--mixer-option",
                                                              "decay_span=0", "--mixer-option", "linear_rope=true",
                                                              "--mixer-option", "sinks=0", "--mixer-option",
                                                              "sparse_cache=0", "--block-size", "256"]))
    assert plain.mixer_options == {"decay_span": 0, "linear_rope": True, "sinks": 0, "sparse_cache": 0,
                                   "cache_while_training": False}             # LoLCATs as published
    short = HealConfig(donor="d", out_dir="o", block_size=256, mixer_options={"sink_position_limit": 9000})
    assert short.mixer_options["sink_position_limit"] == 9000                    # given, kept
    assert HealConfig(donor="d", out_dir="o", block_size=256).mixer_options["sink_position_limit"] == 255
    rotated = HealConfig(donor="d", out_dir="o", block_size=256, mixer_options={"linear_rope": True}).mixer_options
    assert "cache_position_limit" not in rotated                 # the cache keeps no unrotated keys to score far pairs
    assert rotated["logn_scale"] == 256 and "logn_scale" not in plain.mixer_options     # with the cache only
    assert (cfg.budget, cfg.lr, cfg.kd_weight, cfg.block_size) == (default.budget, default.lr, default.kd_weight,
                                                                   default.block_size)
    assert main(["heal", "--donor", "d", "--out", "o", "--budget", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xatl heal: error: cannot read budget 'soon'") and err.count("\n") == 1


def test_a_second_heal_on_the_same_out_is_refused_while_the_first_runs(donor_dir, tmp_path):
    from xatl.heal.run import LOCK
    from xatl.utils.fs import exclusive_lock

    out = tmp_path / "run"
    with exclusive_lock(out / LOCK, "held by the first run"):          # the first heal, mid-conversion
        with pytest.raises(OutputExistsError, match="another heal is working in"):
            heal(_cfg(donor_dir, out), dataset=periodic_data(), progress=False)
        assert [p.name for p in out.iterdir()] == [LOCK]                 # the second one wrote nothing
    result = heal(_cfg(donor_dir, out), dataset=periodic_data(), progress=False)   # free again: it runs
    assert result.final_dir.is_dir()


def test_a_refused_heal_leaves_no_directory(donor_dir, tmp_path):
    with pytest.raises(ConfigError):
        heal(_cfg(donor_dir, tmp_path / "new", attention_layers=[0, 1]), dataset=periodic_data(), progress=False)
    assert not (tmp_path / "new").exists()


def test_auto_layers_choose_measure_and_record(donor_dir, tmp_path):
    """--attention-layers auto:1: a short attention transfer, the probe KL per layer, the chosen layer kept as
    softmax in the saved student, the probe's steps taken from stage 1 (16 steps: 8 + 8 -> 6 + 8 after 2)."""
    from tiny import char_tokenizer

    char_tokenizer().save_pretrained(donor_dir)
    donor, _ = trained_donor()
    cfg = _cfg(donor_dir, tmp_path / "auto", attention_layers="auto:1", select_length=300, select_probes=2,
               select_align_steps=2)
    result = heal(cfg, donor=donor, dataset=periodic_data(), progress=False)
    sel = result.plan["selection"]
    assert len(sel["layers"]) == 1 and set(sel["kl"]) == {"0", "1"} and sel["align_steps"] == 2
    assert sel["kl"][str(sel["layers"][0])] == min(sel["kl"].values())
    assert result.plan["align_steps"] == 6 and result.plan["lm_steps"] == 8
    student_cfg = json.loads((tmp_path / "auto" / "student" / "config.json").read_text())
    assert student_cfg["attention_layers"] == sel["layers"]
    saved = json.loads((tmp_path / "auto" / "heal.json").read_text())
    assert saved["config"]["attention_layers"] == "auto:1" and saved["plan"]["selection"]["layers"] == sel["layers"]


@pytest.mark.parametrize("bad", ["auto", "auto:0", "auto:x", "first"])
def test_bad_auto_layers_are_refused(donor_dir, tmp_path, bad):
    with pytest.raises(ConfigError):
        _cfg(donor_dir, tmp_path / "bad", attention_layers=bad)
