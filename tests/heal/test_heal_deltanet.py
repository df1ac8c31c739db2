"""``xatl heal`` with the delta-rule mixers (the heal recipe is mixer-agnostic): on the tiny trained donor, attention
transfer lowers every layer's alignment error and the held-out loss, and stage 2 lowers the loss further."""

from __future__ import annotations

import pytest
from heal_helpers import heal_with_alignment_probe, save_donor, trained_donor, val_losses

from xatl.heal import HealConfig


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory):
    return save_donor(tmp_path_factory.mktemp("donor") / "periodic")


@pytest.mark.parametrize("mixer", ["deltanet", "gated_deltanet"])
def test_heal_transfers_attention_into_the_delta_rule(mixer, donor_dir, tmp_path):
    donor, _ = trained_donor()
    cfg = HealConfig(donor=str(donor_dir), out_dir=str(tmp_path / "run"), mixer=mixer, mixer_options={"chunk_size": 8},
                     budget="40steps", align_fraction=0.75, block_size=32, micro_batch_size=8, eval_every=10,
                     eval_batches=2, eval_documents=0, lora_rank=4)
    _, before, after = heal_with_alignment_probe(cfg, donor)
    assert all(a < 0.85 * b for a, b in zip(after, before)), (before, after)
    val = val_losses(tmp_path / "run")
    assert val[30] < val[0] - 0.2 and val[40] < val[30], val     # seen: 5.46 -> 5.09 -> 4.81 (gated_deltanet)
