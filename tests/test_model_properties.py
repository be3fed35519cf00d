"""Properties every registered model must have: autoregressive, normalised, sampling matches log_prob."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import chisquare

from chainrule.core.errors import ConfigError
from chainrule.modalities.registry import MODELS, build_model, model_class

MOD = {n: m for m, n in MODELS if m != "series" and model_class(n, m).family == "autoregressive"}  # chain rule
ALL = sorted(MOD)


def shape_for(name: str, event_shape) -> tuple[int, ...]:
    """Image shapes as given; for sequence models the same number of values as one token sequence."""
    if model_class(name, MOD[name]).modality == "text":
        n = 1
        for s in event_shape:
            n *= s
        return (1, n)
    return tuple(event_shape)


def tiny(name: str, event_shape, levels: int, head: str | None = None, num_classes: int = 0, seed: int = 0):
    """A tiny instance with randomised weights (so an exact zero gradient is never an accident)."""
    event_shape = shape_for(name, event_shape)
    if model_class(name, MOD[name]).modality == "text":
        head = "categorical"  # token models always predict a categorical over the vocabulary
    torch.manual_seed(seed)
    model = build_model(name, event_shape, levels, num_classes=num_classes, head=head,
                        **model_class(name, MOD[name]).TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def mask_choices(model):
    """MADE-style models expose several orderings; every one must be autoregressive."""
    k = getattr(model, "num_masks", 1)
    for i in range(k):
        if hasattr(model, "use_mask"):
            model.use_mask(i)
        yield i


def all_outcomes(event_shape, levels: int) -> torch.Tensor:
    dims = 1
    for s in event_shape:
        dims *= s
    grid = torch.tensor(list(itertools.product(range(levels), repeat=dims)), dtype=torch.long)
    return grid.reshape(-1, *event_shape)


SHAPES = [((1, 4, 4), 2, None), ((3, 3, 3), 4, None)]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("event_shape,levels,head", SHAPES)
def test_gradient_autoregressive(name, event_shape, levels, head):
    """d params[pos_i] / d input[pos_j] == 0 exactly for every j at or after i in the ordering."""
    model = tiny(name, event_shape, levels, head)
    x = torch.randint(0, levels, (2, *model.event_shape))
    n = model.num_positions
    for _ in mask_choices(model):
        order = model.ordering().tolist()
        rank = {pos: r for r, pos in enumerate(order)}
        inp = torch.randn_like(model.encode(x).float()).requires_grad_()
        out = model.network(inp, None).reshape(2, model.num_params_out, n)
        saw_dependency = False
        for pos in order:
            (g,) = torch.autograd.grad(out[:, :, pos].sum(), inp, retain_graph=True, allow_unused=True)
            if g is None:
                g = torch.zeros(n)
            elif model.modality == "text":  # embeddings (B, T, D)
                g = g.abs().sum(dim=(0, 2))
            else:  # float images (B, C, H, W)
                g = g.abs().sum(dim=(0, 1)).reshape(-1)
            for other in range(n):
                if rank[other] >= rank[pos]:
                    assert g[other] == 0, f"{name}: output {pos} depends on input {other} (rank {rank[other]})"
                elif g[other] != 0:
                    saw_dependency = True
        if not getattr(model, "closed_form", False):
            assert saw_dependency, f"{name}: outputs depend on no earlier input at all"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("event_shape,levels,head", SHAPES)
def test_future_values_never_change_past_terms(name, event_shape, levels, head):
    """log p(x_i | x_<i) is unchanged when any later value changes (channel ordering inside the head included)."""
    model = tiny(name, event_shape, levels, head)
    g = torch.Generator().manual_seed(1)
    for _ in mask_choices(model):
        order = model.ordering().tolist()
        x = torch.randint(0, levels, (8, *model.event_shape), generator=g)
        base = model.log_prob_positions(x).reshape(8, -1)
        for r in range(len(order) - 1):
            later = order[r + 1:]
            x2 = x.clone().reshape(8, model.channels, -1)
            x2[:, :, later] = torch.randint(0, levels, x2[:, :, later].shape, generator=g)
            other = model.log_prob_positions(x2.reshape_as(x)).reshape(8, -1)
            torch.testing.assert_close(other[:, order[: r + 1]], base[:, order[: r + 1]], rtol=0, atol=1e-5)


NORM_CASES = [((1, 2, 2), 2, None), ((1, 2, 2), 3, None), ((3, 1, 2), 3, None)]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("event_shape,levels,head", NORM_CASES)
def test_normalised(name, event_shape, levels, head):
    """exp(log_prob) sums to 1 over every outcome of a tiny model."""
    model = tiny(name, event_shape, levels, head)
    xs = all_outcomes(model.event_shape, levels)
    with torch.no_grad():
        total = model.log_prob(xs).double().exp().sum().item()
    assert abs(total - 1.0) < 1e-5, f"{name}: probabilities sum to {total}"


@pytest.mark.parametrize("name", ALL)
def test_class_conditional_normalised(name):
    """Each class's conditional distribution is normalised too (for models that take a class)."""
    try:
        model = tiny(name, (1, 2, 2), 2, num_classes=3)
    except ConfigError:
        pytest.skip(f"{name} has no class conditioning")
    xs = all_outcomes(model.event_shape, 2)
    totals = []
    with torch.no_grad():
        for k in range(3):
            cond = torch.full((len(xs),), k, dtype=torch.long)
            totals.append(model.log_prob(xs, cond).double().exp().sum().item())
        p0 = model.log_prob(xs, torch.zeros(len(xs), dtype=torch.long))
        p1 = model.log_prob(xs, torch.ones(len(xs), dtype=torch.long))
    assert all(abs(t - 1) < 1e-5 for t in totals), totals
    assert not torch.allclose(p0, p1), f"{name}: the class label has no effect"


@pytest.mark.parametrize("name", ALL)
def test_sampling_matches_log_prob(name):
    """Empirical frequencies of 20,000 samples agree with exp(log_prob) (chi-square, fixed seed)."""
    model = tiny(name, (1, 2, 2), 2, seed=3)
    xs = all_outcomes(model.event_shape, 2)
    with torch.no_grad():
        probs = model.log_prob(xs).double().exp()
    n = 20_000
    samples = model.sample(n, generator=torch.Generator().manual_seed(0))
    codes = (samples.reshape(n, -1) * torch.tensor([8, 4, 2, 1])).sum(1)
    counts = torch.bincount(codes, minlength=16).double()
    expected = probs / probs.sum() * n  # chisquare wants matching totals; float32 sums are 1 +- 1e-7
    stat, pvalue = chisquare(counts.numpy(), expected.numpy())
    assert pvalue > 1e-4, f"{name}: sample frequencies disagree with log_prob (chi2={stat:.1f}, p={pvalue:.2g})"


CACHED = [n for n in ALL if model_class(n, MOD[n]).supports_cache]
FAST = [n for n in ALL if model_class(n, MOD[n]).supports_cache or model_class(n, MOD[n]).row_causal]


@pytest.mark.parametrize("name", FAST)
def test_fast_sampling_equals_full_network(name):
    """The fast path (cache or row cropping) gives the same samples as re-running the full network."""
    model = tiny(name, (1, 5, 5), 2)
    a = model.sample(16, use_cache=True, generator=torch.Generator().manual_seed(7))
    b = model.sample(16, use_cache=False, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in ALL if model_class(n, MOD[n]).row_causal])
def test_row_cropped_network_matches_full(name):
    """For row-causal models, the network on rows 0..r gives the full network's params for those rows."""
    model = tiny(name, (3, 5, 4), 4)
    inp = torch.rand(3, 3, 5, 4) * 2 - 1
    full = model.network(inp)
    for r in range(5):
        torch.testing.assert_close(model.network(inp[:, :, : r + 1]), full[:, :, : r + 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", CACHED)
def test_cached_equals_uncached(name):
    """With a cache, the step-by-step parameters equal the teacher-forced ones."""
    model = tiny(name, (1, 5, 5), 2)
    a = model.sample(16, use_cache=True, generator=torch.Generator().manual_seed(7))
    # step-by-step parameters equal teacher-forced parameters
    full = model(a).reshape(16, model.num_params_out, -1)
    cache = model.init_cache(16)
    flat = a.reshape(16, 1, -1)
    prev = None
    for pos in model.ordering().tolist():
        params, cache = model.step(prev, cache)
        torch.testing.assert_close(params, full[:, :, pos], rtol=1e-5, atol=1e-5)
        prev = flat[:, :, pos]


def test_completion_keeps_given_pixels():
    """Completion leaves the given top half untouched and only fills the rest."""
    model = tiny("gated_pixelcnn", (1, 4, 4), 2)
    x = torch.randint(0, 2, (6, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    known = torch.zeros(6, 4, 4, dtype=torch.bool)
    known[:, :2] = True
    out = model.sample(6, x_given=x, known=known, generator=torch.Generator().manual_seed(1))
    other = model.sample(6, x_given=x, known=known, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out[:, :, :2], x[:, :, :2]) and torch.equal(other[:, :, :2], x[:, :, :2])
    assert not torch.equal(out[:, :, 2:], other[:, :, 2:]), "the hidden half was not sampled"


@pytest.mark.parametrize("name", [n for n in CACHED if model_class(n, MOD[n]).modality == "text"])
def test_prefill_matches_step_by_step(name):
    """A batched prefill gives the same next-token logits and the same cache as feeding tokens one by one."""
    from chainrule.modalities.text.models.sequence import SequenceModel

    model = tiny(name, (1, 4, 4), 5)
    tokens = torch.randint(0, 5, (3, 9), generator=torch.Generator().manual_seed(4))
    fast, fast_cache = model.prefill(tokens)
    slow, slow_cache = SequenceModel.prefill(model, tokens)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    nxt = torch.randint(0, 5, (3, 1), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(model.step(nxt, fast_cache)[0], model.step(nxt, slow_cache)[0], rtol=1e-5, atol=1e-5)
