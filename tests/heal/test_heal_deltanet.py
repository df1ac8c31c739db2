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
    """Attention transfer (60 of 80 steps) lowers every layer's alignment error, and the total.

    gated_deltanet's second layer (the donor's copying layer) is the hard one: its error plateaus at 0.78-0.83x of
    the converted student's from about step 40 on. With 30 alignment steps (the old test) it was 0.80x to 0.89x
    depending on the CPU's kernels, across a 0.85x threshold. Measured at step 60, per layer [layer 0, layer 1],
    on an AMD EPYC under ATEN_CPU_CAPABILITY default / avx2 / avx512 (the in-process donor training is itself
    rounding-sensitive, so the machines differ in their starting points too):
      gated_deltanet: [0.28, 0.79] / [0.41, 0.83] / [0.40, 0.78];  deltanet: [0.27, 0.39] / [0.29, 0.37] / [0.32, 0.33].
    The bounds (every layer < 0.9x, the mean < 0.7x) sit 0.07 and 0.08 beyond the worst of these."""
    donor, _ = trained_donor()
    cfg = HealConfig(donor=str(donor_dir), out_dir=str(tmp_path / "run"), mixer=mixer, mixer_options={"chunk_size": 8},
                     budget="80steps", align_fraction=0.75, block_size=32, micro_batch_size=8, eval_every=10,
                     eval_batches=2, eval_documents=0, lora_rank=4)
    _, before, after = heal_with_alignment_probe(cfg, donor, probe_step=60)
    ratios = [a / b for a, b in zip(after, before)]
    assert all(r < 0.9 for r in ratios) and sum(ratios) / len(ratios) < 0.7, (before, after)
    val = val_losses(tmp_path / "run")
    assert val[60] < val[0] - 0.2 and val[80] < val[60], val     # seen: 5.75 -> 4.70 -> 4.58 (gated_deltanet)
