"""Each mixer, as a module: its naive, chunked and recurrent forms agree (outputs, final states, input gradients);
a chunked prefill continued by recurrent steps (and by a second chunked block) equals one parallel pass; padding
contributes nothing; the state's size does not depend on T; bf16 stays close to fp32."""

from __future__ import annotations

import math

import pytest
import torch
from mixer_helpers import CASES, CHUNK, context, make_mixer

LENGTHS = (1, 7, CHUNK, 3 * CHUNK + 5)
TOL = 5e-5   # fp32, relative to the largest value (seen: about 1e-6)


def _close(a, b, what, tol=TOL):
    assert a.shape == b.shape, what
    if not b.is_floating_point():
        assert torch.equal(a, b), what
        return
    err = (a.float() - b.float()).abs().max().item()
    assert err <= tol * max(1.0, b.float().abs().max().item()), f"{what}: max error {err:.3g}"


def _run(mixer, rotary, x, form, state=None, start=0, mask=None):
    mixer.opts.form = form
    x = x.clone().requires_grad_()
    pos = torch.arange(start, start + x.shape[1]).expand(x.shape[0], -1)
    y, new = mixer(x, context(rotary, x, pos, mask), state=state, use_cache=True)
    (gx,) = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), x)
    return y.detach(), {k: v.detach() for k, v in new.items()}, gx


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_forms_agree(case, T):
    mixer, rotary = make_mixer(case)
    x = torch.randn(2, T, mixer.hidden_size, generator=torch.Generator().manual_seed(T))
    ref = _run(mixer, rotary, x, "naive")
    for form in ("chunked", "recurrent"):
        y, state, gx = _run(mixer, rotary, x, form)
        _close(y, ref[0], f"{form} output")
        assert state.keys() == ref[1].keys()
        for k in state:
            _close(state[k], ref[1][k], f"{form} state {k!r}")
        _close(gx, ref[2], f"{form} input gradient")


@pytest.mark.parametrize("case", sorted(CASES))
def test_prefill_then_steps_equals_one_pass(case):
    mixer, rotary = make_mixer(case, seed=1)
    T, P = 3 * CHUNK + 5, 2 * CHUNK + 3
    x = torch.randn(2, T, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    full = _run(mixer, rotary, x, "chunked")[0]
    y, state, _ = _run(mixer, rotary, x[:, :P], "chunked")
    outs = [y]
    for t in range(P, T - 4):                                   # one-token steps run the recurrent form
        y, state, _ = _run(mixer, rotary, x[:, t:t + 1], "chunked", state=state, start=t)
        outs.append(y)
    y, state, _ = _run(mixer, rotary, x[:, T - 4:], "chunked", state=state, start=T - 4)   # a chunked continuation
    outs.append(y)
    _close(torch.cat(outs, 1), full, "prefill + steps + block vs one pass")


@pytest.mark.parametrize("case", sorted(CASES))
def test_padding_contributes_nothing(case):
    """Row 1 is row 0's text left-padded by 3 (positions shifted so its real tokens keep theirs): same outputs on
    real tokens, and states that continue the same way."""
    mixer, rotary = make_mixer(case, seed=2)
    T, pad = 11, 3
    g = torch.Generator().manual_seed(0)
    text = torch.randn(1, T, mixer.hidden_size, generator=g)
    x = torch.cat([text, torch.cat([torch.randn(1, pad, mixer.hidden_size, generator=g), text[:, :T - pad]], 1)])
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, :pad] = 0
    pos = torch.stack([torch.arange(T), torch.arange(T) - pad])
    mixer.opts.form = "chunked"
    with torch.no_grad():
        y, state = mixer(x, context(rotary, x, pos, mask), use_cache=True)
        ref, ref_state = mixer(text[:, :T - pad], context(rotary, text[:, :T - pad]), use_cache=True)
        _close(y[1, pad:], ref[0], "padded row vs unpadded text")
        nxt = text[:, T - pad:T - pad + 1].expand(2, -1, -1)
        step_pos = torch.tensor([[T], [T - pad]])
        step_mask = torch.ones(2, T + 1, dtype=torch.long)
        step_mask[1, :pad] = 0
        y2, _ = mixer(nxt, context(rotary, nxt, step_pos, step_mask), state=state, use_cache=True)
        ref2, _ = mixer(nxt[:1], context(rotary, nxt[:1], torch.tensor([[T - pad]])), state=ref_state, use_cache=True)
    _close(y2[1], ref2[0], "step after a padded prefill")


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_size_is_independent_of_length(case):
    mixer, rotary = make_mixer(case)
    empty = mixer.init_state(2, torch.device("cpu"), torch.float32)
    for T in (3, 4 * CHUNK + 1):
        x = torch.randn(2, T, mixer.hidden_size)
        with torch.no_grad():
            _, state = mixer(x, context(rotary, x), use_cache=True)
        assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in empty.items()}
        assert all(v.shape[0] == 2 for v in state.values())


@pytest.mark.parametrize("case", sorted(CASES))
def test_bf16_stays_close_to_fp32(case):
    """bf16 weights and activations (states and op accumulation stay fp32): within 3% of the fp32 output's largest
    value (seen: at most 1.2%)."""
    mixer, rotary = make_mixer(case, seed=3)
    x = torch.randn(2, 3 * CHUNK + 5, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = mixer(x, context(rotary, x))
        mixer.to(torch.bfloat16)
        xb = x.to(torch.bfloat16)
        y, state = mixer(xb, context(rotary, xb), use_cache=True)
        step, _ = mixer(xb[:, :1], context(rotary, xb[:, :1], torch.full((2, 1), x.shape[1])), state=state)
    assert y.dtype == torch.bfloat16 and step.dtype == torch.bfloat16
    assert torch.isfinite(y).all()
    _close(y.float(), ref, "bf16 vs fp32", tol=0.03)


@pytest.mark.parametrize("case", ["lolcats", "lolcats-decay", "lolcats-cache-decay", "lolcats-long-cache",
                                  "lolcats-long-sinks", "lolcats-sinks-cache", "lolcats-sinks-limit",
                                  "lolcats-sinks-cache-limit", "lolcats-cache-far", "lolcats-logn"])
def test_parameter_gradients_agree(case):
    """The new parameters (feature maps, window factor, decay) get the same gradients from every form."""
    mixer, rotary = make_mixer(case, seed=4)
    x = torch.randn(2, 3 * CHUNK + 5, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    grads = {}
    for form in ("naive", "chunked", "recurrent"):
        mixer.opts.form = form
        mixer.zero_grad()
        y, _ = mixer(x, context(rotary, x))
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads[form] = {n: p.grad.clone() for n, p in mixer.named_parameters() if p.grad is not None}
    assert "decay" not in case or grads["naive"]["decay"].abs().max() > 0
    for form in ("chunked", "recurrent"):
        assert grads[form].keys() == grads["naive"].keys()
        for n in grads[form]:
            _close(grads[form][n], grads["naive"][n], f"{form} gradient of {n}")


@pytest.mark.parametrize("case", ["lolcats", "lolcats-decay", "lolcats-cache", "lolcats-cache-decay", "lolcats-long",
                                  "lolcats-long-cache", "lolcats-sinks", "lolcats-sinks-cache", "lolcats-sinks-limit",
                                  "lolcats-cache-far", "lolcats-logn"])
def test_state_stays_the_same_size_over_1000_decode_steps(case):
    mixer, rotary = make_mixer(case, seed=5)
    mixer.opts.form = "chunked"
    x = torch.randn(1, 1000, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, state = mixer(x[:, :4], context(rotary, x[:, :4]), use_cache=True)
        sizes = {k: v.shape for k, v in state.items()}
        for t in range(4, 1000):
            y, state = mixer(x[:, t:t + 1], context(rotary, x[:, t:t + 1], torch.tensor([[t]])), state=state,
                             use_cache=True)
            assert {k: v.shape for k, v in state.items()} == sizes, f"state changed size at step {t}"
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("case, invariant", [("lolcats", False), ("lolcats-long", True), ("lolcats-long-cache", True),
                                             ("lolcats-long-sinks", True)])
def test_linear_part_without_rope_is_shift_invariant(case, invariant):
    """With linear_rope=False only the window sees positions, through RoPE, which is relative: the same tokens at
    positions 0.. and at 5000.. give the same outputs. LoLCATs' feature maps on rotated q/k do not (their scores
    depend on absolute positions, which is why they fail past the trained length). (The sinks' position limit is
    lifted here: it caps absolute positions.)"""
    mixer, rotary = make_mixer(case, seed=6, sink_position_limit=10**6)
    mixer.opts.form = "chunked"
    x = torch.randn(1, 3 * CHUNK + 5, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        near, _ = mixer(x, context(rotary, x))
        far, _ = mixer(x, context(rotary, x, torch.arange(5000, 5000 + x.shape[1])[None]))
    err = (near - far).abs().max().item() / near.abs().max().item()
    assert (err < 1e-4) if invariant else (err > 1e-2), err


@pytest.mark.parametrize("case", ["lolcats-sinks-limit", "lolcats-sinks-cache-limit"])
def test_sinks_past_the_position_limit(case):
    """Up to ``sink_position_limit`` (20) the limit changes nothing; past it, only the sinks' scores change (the
    queries see them as if they stood at position 20), so a query's output differs from the unlimited mixer's. By
    default the limit is the donor's last position (tiny donor: 127)."""
    mixer, rotary = make_mixer(case, seed=7)
    free, _ = make_mixer(case, seed=7, sink_position_limit=10**6)
    assert make_mixer("lolcats-sinks", seed=7)[0].sink_limit == 127
    x = torch.randn(2, 3 * CHUNK + 5, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        capped, _ = mixer(x, context(rotary, x))
        plain, _ = free(x, context(rotary, x))
    torch.testing.assert_close(capped[:, :21], plain[:, :21])
    assert ((capped[:, 21:] - plain[:, 21:]).abs().amax(-1) > 1e-4).all()


def test_a_cache_kept_out_of_training():
    """cache_while_training=False: a training forward (train mode, no state) is the student without LoLA's cache,
    exactly, and evaluation (eval mode, or any forward with a state) runs the cache; True (the default) runs the
    cache in both."""
    off, rotary = make_mixer("lolcats-sinks-cache", seed=8, cache_while_training=False)
    plain, _ = make_mixer("lolcats-sinks-cache", seed=8, sparse_cache=0)
    on, _ = make_mixer("lolcats-sinks-cache", seed=8)
    x = torch.randn(2, 3 * CHUNK + 5, off.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        evaluated = off(x, context(rotary, x))[0]
        torch.testing.assert_close(evaluated, on(x, context(rotary, x))[0])
        assert (evaluated - plain(x, context(rotary, x))[0]).abs().max() > 1e-4       # the cache matters here
        off.train(), on.train(), plain.train()
        torch.testing.assert_close(off(x, context(rotary, x))[0], plain(x, context(rotary, x))[0])
        torch.testing.assert_close(on(x, context(rotary, x))[0], evaluated)
        y, state = off(x, context(rotary, x), use_cache=True)                        # generation: the cache
        torch.testing.assert_close(y, evaluated)
        assert "cache_k" in state


def _changes_only_past(case: str, seed: int, same: int, differ: int, **plain_options):
    """Mixer ``case`` agrees with the same weights built with ``plain_options`` before position ``same`` and differs
    from it at (nearly) every position from ``differ`` on, in each form. -> (mixer, rotary, x)."""
    mixer, rotary = make_mixer(case, seed=seed)
    free, _ = make_mixer(case, seed=seed, **plain_options)
    x = torch.randn(2, 3 * CHUNK + 5, mixer.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain, _ = free(x, context(rotary, x))
        for form in ("naive", "chunked", "recurrent"):
            mixer.opts.form = form
            out, _ = mixer(x, context(rotary, x))
            torch.testing.assert_close(out[:, :same], plain[:, :same])
            assert ((out[:, differ:] - plain[:, differ:]).abs().amax(-1) > 1e-4).float().mean() > 0.9, form
    return mixer, rotary, x


def test_cached_pairs_past_the_position_limit():
    """Up to ``cache_position_limit`` (12) the limit changes nothing (no pair can be further back); past it the
    cached pairs further back are scored as if 12 tokens away, so outputs differ from the unlimited mixer's. In
    every form; by default the limit is the donor's last position (tiny donor: 127)."""
    _changes_only_past("lolcats-cache-far", 7, same=13, differ=20, cache_position_limit=10**6)
    assert make_mixer("lolcats-long-cache", seed=7)[0].cache_limit == 127


def test_logn_scaling_past_the_trained_length():
    """``logn_scale`` (16) changes nothing before position 16 (factor 1) and, in every form, changes the outputs
    after it, where the softmax part's logits are multiplied by log(t + 1) / log(16). (That the forms agree with
    each other is every CASES test's job.)"""
    mixer, rotary, x = _changes_only_past("lolcats-logn", 9, same=16, differ=17, logn_scale=0)
    factor = mixer.logn_factor(context(rotary, x))
    assert factor.shape == (2, 1, x.shape[1], 1)
    assert (factor[:, :, :16] == 1).all()
    torch.testing.assert_close(factor[0, 0, 27, 0], torch.tensor(math.log(28) / math.log(16)))
    with pytest.raises(ValueError, match="logn_scale"):
        make_mixer("lolcats-logn", logn_scale=1)
