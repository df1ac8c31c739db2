"""``xatl heal`` with the delta-rule mixers (the heal recipe is mixer-agnostic): on the tiny trained donor, attention
transfer lowers every layer's alignment error and the held-out loss, and stage 2 lowers the loss further."""

from __future__ import annotations

import pytest
from heal_helpers import periodic_blocks, periodic_data, save_donor, trained_donor

from xatl.heal import HealConfig, heal
from xatl.models import XATLForCausalLM
from xatl.train.metrics import read_metrics
from xatl.train.teacher import alignment_errors


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory):
    return save_donor(tmp_path_factory.mktemp("donor") / "periodic")


@pytest.mark.parametrize("mixer", ["deltanet", "gated_deltanet"])
def test_heal_transfers_attention_into_the_delta_rule(mixer, donor_dir, tmp_path):
    donor, _ = trained_donor()
    ids = periodic_blocks(8, 7)
    seen = {}

    def on_step(step, record, model):
        if step == 30:                                    # the last attention-transfer step
            seen["after"] = alignment_errors(model, donor, ids)

    cfg = HealConfig(donor=str(donor_dir), out_dir=str(tmp_path / "run"), mixer=mixer, mixer_options={"chunk_size": 8},
                     budget="40steps", align_fraction=0.75, block_size=32, micro_batch_size=8, eval_every=10,
                     eval_batches=2, eval_documents=0, lora_rank=4)
    heal(cfg, donor=donor, dataset=periodic_data(), progress=False, on_step=on_step)
    before = alignment_errors(XATLForCausalLM.from_pretrained(tmp_path / "run" / "student"), donor, ids)
    assert all(a < 0.85 * b for a, b in zip(seen["after"], before)), (before, seen["after"])
    val = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path / "run" / "train" / "metrics.jsonl")
           if "val_loss" in r}
    assert val[30] < val[0] - 0.2 and val[40] < val[30], val     # seen: 5.46 -> 5.09 -> 4.81 (gated_deltanet)
