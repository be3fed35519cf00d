"""Logits processors: each one's defining property, on random batches (hypothesis) and hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.core.errors import ConfigError
from chainrule.modalities.text.generation import (
    GenerationConfig,
    apply_temperature,
    banned_ngram_mask,
    choose_tokens,
    no_repeat_ngram,
    process_logits,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)

FAST = settings(max_examples=60, deadline=None)


def logits_batches(max_vocab: int = 12, tied: bool = False) -> st.SearchStrategy[torch.Tensor]:
    """(B, V) float logits; ``tied`` draws from a few integer values so ties are frequent."""
    values = st.integers(-3, 3).map(float) if tied else st.floats(-20, 20, allow_nan=False, width=32)
    return st.integers(1, 4).flatmap(lambda b: st.integers(2, max_vocab).flatmap(
        lambda v: st.lists(st.lists(values, min_size=v, max_size=v), min_size=b, max_size=b)
    )).map(lambda rows: torch.tensor(rows, dtype=torch.float32))


# ------------------------------------------------------------------ top-k
@FAST
@given(logits=logits_batches(tied=True), k=st.integers(1, 14))
def test_top_k_keeps_exactly_the_k_largest_lowest_id_wins_ties(logits, k):
    out = top_k_filter(logits, k)
    v = logits.shape[1]
    for row, orig in zip(out, logits, strict=True):
        kept = torch.isfinite(row)
        assert int(kept.sum()) == min(k, v)
        assert torch.equal(row[kept], orig[kept])  # kept logits untouched
        if kept.all():
            continue
        assert orig[kept].min() >= orig[~kept].max()  # nothing dropped beats anything kept
        # tie rule: among tokens equal to the k-th value, the kept ones have the lower ids
        kth = orig[kept].min()
        tied = (orig == kth).nonzero().flatten().tolist()
        kept_tied = [i for i in tied if kept[i]]
        assert kept_tied == tied[:len(kept_tied)]


def test_top_k_tie_example():
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 2.0, 0.0]])
    out = top_k_filter(logits, 3)
    assert torch.isfinite(out[0]).tolist() == [False, True, True, True, False, False]
    assert torch.equal(top_k_filter(logits, None), logits) and torch.equal(top_k_filter(logits, 99), logits)


# ------------------------------------------------------------------ top-p
@FAST
@given(logits=logits_batches(tied=True), k=st.integers(1, 14), p=st.floats(0.01, 0.99))
def test_top_p_after_top_k_is_the_smallest_nucleus_renormalised(logits, k, p):
    after_k = top_k_filter(logits, k)
    out = top_p_filter(after_k, p)
    q = torch.softmax(after_k.double(), 1)  # the top-k distribution, renormalised over the k kept
    for row, qrow in zip(out, q, strict=True):
        kept = torch.isfinite(row)
        assert kept.any()
        assert (qrow[kept] > 0).all()  # nothing outside the top-k comes back
        mass = float(qrow[kept].sum())
        assert mass >= p - 1e-6  # the nucleus reaches p ...
        assert mass - float(qrow[kept].min()) < p + 1e-6 or int(kept.sum()) == 1  # ... and is minimal
        assert qrow[kept].min() >= qrow[~kept].max() if (~kept).any() else True  # most likely tokens
        final = torch.softmax(row.double(), 0)
        assert torch.allclose(final[kept], qrow[kept] / qrow[kept].sum(), atol=1e-6)  # renormalised
        assert float(final[~kept].sum()) == 0.0


def test_top_p_always_keeps_one_and_one_is_a_no_op():
    logits = torch.tensor([[5.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    tiny = top_p_filter(logits, 1e-9)
    assert torch.isfinite(tiny).sum(1).tolist() == [1, 1]
    assert torch.isfinite(tiny[1]).tolist() == [True, False, False]  # tie: lowest id
    assert torch.equal(top_p_filter(logits, 1.0), logits)


# ------------------------------------------------------------------ temperature
@FAST
@given(v=st.integers(2, 30), b=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_temperature_to_zero_is_greedy(v, b, seed):
    g = torch.Generator().manual_seed(seed)
    # distinct values 0.05 apart, shuffled: a unique argmax with a clear gap
    logits = torch.stack([torch.randperm(v, generator=g).float() * 0.05 for _ in range(b)])
    greedy = logits.argmax(1)
    zero = GenerationConfig(temperature=0.0)
    assert torch.equal(choose_tokens(process_logits(logits, logits.new_zeros(b, 0).long(), zero), zero), greedy)
    only = apply_temperature(logits, 0.0)
    assert torch.equal(torch.isfinite(only).nonzero()[:, 1], greedy)
    for t in [1.0, 0.1, 1e-3]:  # softmax mass on the argmax grows to 1 as t -> 0
        probs = torch.softmax(apply_temperature(logits, t), 1).gather(1, greedy[:, None])
        assert (probs >= torch.softmax(logits, 1).gather(1, greedy[:, None]) - 1e-6).all()
    assert torch.allclose(torch.softmax(apply_temperature(logits, 1e-3), 1).gather(1, greedy[:, None]),
                          torch.ones(b, 1))
    cold = GenerationConfig(temperature=1e-3)
    draws = choose_tokens(process_logits(logits, logits.new_zeros(b, 0).long(), cold), cold, g)
    assert torch.equal(draws, greedy)


def test_temperature_scales_logits():
    logits = torch.tensor([[2.0, -4.0]])
    assert torch.equal(apply_temperature(logits, 2.0), torch.tensor([[1.0, -2.0]]))
    with pytest.raises(ValueError):
        apply_temperature(logits, -1.0)


# ------------------------------------------------------------------ repetition penalty
def test_repetition_penalty_ctrl_formula():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.0]])
    out = repetition_penalty(logits, torch.tensor([[0, 1, 0, 3]]), 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -4.0, 1.0, 0.0]]))


@FAST
@given(logits=logits_batches(), data=st.data(), penalty=st.floats(1.05, 5.0))
def test_repetition_penalty_lowers_repeated_tokens_positive_and_negative(logits, data, penalty):
    b, v = logits.shape
    logits = torch.where(logits >= 0, logits + 0.1, logits - 0.1)  # away from 0 (a zero logit is left at 0)
    length = data.draw(st.integers(1, 6))
    tokens = torch.tensor(data.draw(st.lists(st.lists(st.integers(0, v - 1), min_size=length, max_size=length),
                                             min_size=b, max_size=b)))
    out = repetition_penalty(logits, tokens, penalty)
    seen = torch.zeros(b, v, dtype=torch.bool)
    for i, row in enumerate(tokens.tolist()):
        seen[i, row] = True
    assert torch.equal(out[~seen], logits[~seen])  # unseen tokens untouched
    assert (out[seen] < logits[seen]).all()  # positive and negative logits alike go down
    logp_before, logp_after = torch.log_softmax(logits.double(), 1), torch.log_softmax(out.double(), 1)
    for i in range(b):
        for s in seen[i].nonzero().flatten().tolist():
            for u in (~seen[i]).nonzero().flatten().tolist():  # odds of a repeat vs any new token drop
                assert logp_after[i, s] - logp_after[i, u] < logp_before[i, s] - logp_before[i, u]


@pytest.mark.parametrize("value", [3.0, -3.0])
def test_repetition_penalty_single_repeat_probability_drops(value):
    logits = torch.tensor([[value, 1.0, -1.0, 0.25]])
    before = torch.softmax(logits, 1)[0, 0]
    after = torch.softmax(repetition_penalty(logits, torch.tensor([[0]]), 1.5), 1)[0, 0]
    assert after < before


# ------------------------------------------------------------------ no-repeat-n-gram
def brute_force_banned(seq: list[int], n: int) -> set[int]:
    if len(seq) < n:
        return set()
    prefix = seq[len(seq) - n + 1:]
    return {seq[i + n - 1] for i in range(len(seq) - n + 1) if seq[i:i + n - 1] == prefix}


@FAST
@given(data=st.data(), n=st.integers(1, 4), v=st.integers(2, 5), b=st.integers(1, 4), length=st.integers(0, 14))
def test_no_repeat_ngram_bans_exactly_the_repeating_tokens(data, n, v, b, length):
    rows = data.draw(st.lists(st.lists(st.integers(0, v - 1), min_size=length, max_size=length),
                              min_size=b, max_size=b))
    tokens = torch.tensor(rows, dtype=torch.long).reshape(b, length)
    mask = banned_ngram_mask(tokens, n, v)
    for i, row in enumerate(rows):
        assert set(mask[i].nonzero().flatten().tolist()) == brute_force_banned(row, n)
    logits = torch.randn(b, v)
    out = no_repeat_ngram(logits, tokens, n)
    assert torch.equal(torch.isneginf(out), mask)
    assert torch.equal(out[~mask], logits[~mask])


def test_no_repeat_ngram_example_and_fallback():
    tokens = torch.tensor([[1, 2, 3, 1, 2]])  # "1 2" was followed by 3: 3 is banned after "... 1 2"
    assert banned_ngram_mask(tokens, 3, 5)[0].nonzero().flatten().tolist() == [3]
    assert banned_ngram_mask(tokens, 2, 5)[0].nonzero().flatten().tolist() == [3]  # "2" was followed by 3
    assert banned_ngram_mask(tokens, 1, 5)[0].nonzero().flatten().tolist() == [1, 2, 3]
    # every token banned: fall back to the model's logits rather than sampling from nothing
    cfg = GenerationConfig(no_repeat_ngram_size=1, temperature=0.0)
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    assert process_logits(logits, torch.tensor([[0, 1, 2]]), cfg).argmax(1).item() == 1


def test_process_logits_order_and_purity():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.5]])
    copy = logits.clone()
    cfg = GenerationConfig(repetition_penalty=4.0, top_k=2, temperature=0.5)
    out = process_logits(logits, torch.tensor([[0]]), cfg)
    assert torch.equal(logits, copy)  # input untouched
    # penalty first: token 0 drops to 1.0, so the top 2 are tokens 1 and 2, then divided by 0.5
    assert torch.isfinite(out[0]).tolist() == [False, True, True, False, False]
    assert out[0, 1].item() == 6.0 and out[0, 2].item() == 4.0


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("bad", [
    {"max_new_tokens": -1}, {"max_new_tokens": 1.5}, {"temperature": -0.1}, {"temperature": math.inf},
    {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}, {"repetition_penalty": 0.0}, {"no_repeat_ngram_size": -1},
    {"stop": [""]}, {"stop": [3]}, {"seed": "x"}, {"num_samples": 0}, {"temprature": 1.0},
])
def test_config_rejects_invalid_values(bad):
    with pytest.raises(ConfigError):
        GenerationConfig.from_options(**bad)


def test_config_normalises():
    cfg = GenerationConfig(top_k=0, stop="\n")
    assert cfg.top_k is None and cfg.stop == ["\n"]
