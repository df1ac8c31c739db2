"""``xatl profile`` on tiny models: the donor's KV cache grows with the context, the student's state does not."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import xatl
from tiny import tiny_donor
from xatl.cli.main import main
from xatl.eval.profile import ProfileConfig, cache_nbytes, profile_model

CONTEXTS = [8, 32, 64]


@pytest.fixture(scope="module")
def pair():
    donor = tiny_donor("llama", max_position_embeddings=512)
    student, _ = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"))
    return donor, student.eval()


def _cfg(**kw):
    return ProfileConfig(**{**dict(contexts=CONTEXTS, decode_steps=2, warmup_steps=1, prefill_chunk=16, bound=False),
                            **kw})


def test_kv_cache_grows_and_state_does_not(pair):
    donor, student = pair
    d = profile_model(donor, _cfg(), name="donor", progress=False)
    s = profile_model(student, _cfg(), name="student", progress=False)
    cfg = donor.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    for pt in d["points"]:         # keys + values, every layer, every token, fp32
        assert pt["error"] is None and pt["cache_kind"] == "KV cache"
        assert pt["cache_bytes"] == 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * pt["context"] * 4
    with torch.no_grad():
        state = student(torch.zeros(1, 5, dtype=torch.long), use_cache=True).cache.nbytes()
    assert [pt["cache_bytes"] for pt in s["points"]] == [state] * len(CONTEXTS)
    assert all(pt["cache_kind"] == "recurrent state" for pt in s["points"])
    for pt in d["points"] + s["points"]:
        assert pt["decode_ms_per_token"] > 0 and pt["prefill_tokens_per_s"] > 0


def test_chunked_prefill_equals_one_pass(pair):
    """The prefill in chunks leaves the same cache as one pass (so the chunk size changes only the speed)."""
    _, student = pair
    ids = torch.randint(0, 99, (1, 40))
    with torch.no_grad():
        whole = student(ids, use_cache=True)
        cache = None
        for s in range(0, 40, 16):
            out = student(ids[:, s:s + 16], cache=cache, use_cache=True)
            cache = out.cache
    torch.testing.assert_close(out.logits[:, -1], whole.logits[:, -1], rtol=1e-4, atol=1e-4)
    assert cache_nbytes(cache) == cache_nbytes(whole.cache)


def test_model_without_cache_falls_back_to_recompute(pair):
    donor, _ = pair

    class NoCache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.config = donor, donor.config

        def forward(self, input_ids, **kwargs):
            return SimpleNamespace(logits=self.inner(input_ids).logits, cache=None)

    prof = profile_model(NoCache(), _cfg(contexts=[8]), progress=False)
    pt = prof["points"][0]
    assert pt["cache_kind"].startswith("none") and pt["cache_bytes"] == 0 and pt["decode_ms_per_token"] > 0


def test_profile_command_writes_table_json_and_plots(pair, tmp_path, tokenizer, capsys):
    donor, student = pair
    for name, model in (("donor", donor), ("student", student)):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    out = tmp_path / "prof"
    args = ["profile", "--model", str(tmp_path / "student"), "--donor", str(tmp_path / "donor"), "--contexts",
            "16,8", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "recurrent state" in table and "KV cache" in table
    data = json.loads((out / "profile.json").read_text())
    assert [p["role"] for p in data["profiles"]] == ["model", "donor"]
    assert [pt["context"] for pt in data["profiles"][0]["points"]] == [8, 16]
    for png in ("decode_latency.png", "cache_memory.png", "prefill_throughput.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args) == 2                           # a non-empty --out is not overwritten silently
    assert "--overwrite" in capsys.readouterr().err


def test_profile_labels_and_noise_warning():
    from xatl.cli.profile import _name
    from xatl.eval.profile import format_profile_table

    assert _name("runs/heal-lolcats/train/final") == "heal-lolcats/train/final"
    assert _name("runs/x/train/checkpoints/step-41/") == "x/train/checkpoints/step-41"
    assert _name("students/smol-ret") == "smol-ret"
    point = {"context": 16, "prefill_tokens_per_s": 10.0, "decode_ms_per_token": 5.0, "cache_bytes": 1024,
             "cache_kind": "recurrent state", "error": None}
    quiet = [{"name": "m", "points": [dict(point, decode_noise=0.05)]}]
    busy = [{"name": "m", "points": [dict(point, decode_noise=0.9)]}]
    assert "warning" not in format_profile_table(quiet)
    assert "vary by up to 90% of their median" in format_profile_table(busy)


def test_floor_is_the_streamed_weights_and_cache_over_the_read_bandwidth(pair):
    """The hardware floor of a decode step: every weight once (a tied LM head once; an untied input embedding
    not at all, a step reads one row of it) plus the cache, over the measured read bandwidth."""
    from xatl.eval.profile import streamed_weight_bytes

    _, student = pair                                     # tied embeddings: the table is read as the LM head
    assert streamed_weight_bytes(student) == sum(p.numel() * 4 for p in student.parameters())
    untied = tiny_donor("llama3")
    embed = untied.get_input_embeddings().weight
    assert streamed_weight_bytes(untied) == sum(p.numel() * 4 for p in untied.parameters()) - embed.numel() * 4
    prof = profile_model(student, _cfg(bound=True, bandwidth_buffer=1 << 24), name="student", progress=False)
    bandwidth, weights = prof["read_bandwidth_bytes_per_s"], prof["streamed_weight_bytes"]
    assert bandwidth > 1e8 and prof["bandwidth_buffer_bytes"] == 1 << 24
    for pt in prof["points"]:
        assert pt["floor_ms_per_token"] == pytest.approx((weights + pt["cache_bytes"]) / bandwidth * 1e3)
        assert pt["fraction_of_floor"] == pytest.approx(pt["floor_ms_per_token"] / pt["decode_ms_per_token"])
    from xatl.eval.profile import format_profile_table

    table = format_profile_table([prof])
    assert "floor ms" in table.splitlines()[0] and "GB/s read bandwidth (a sum over 16.0 MiB)" in table
    assert "floor" not in format_profile_table([profile_model(student, _cfg(), progress=False)])
