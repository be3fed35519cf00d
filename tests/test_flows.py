"""Flows: exact inverses, log-determinants equal to autograd's, and a dequantized likelihood that is normalised."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import qmc

from chainrule.core.errors import InputError
from chainrule.modalities.registry import build_model

FLOWS = ["realnvp", "maf"]


def tiny_flow(name: str, event_shape=(1, 2, 2), levels: int = 2, seed: int = 0):
    """Random weights everywhere (the zero-initialised last layers would make every flow the identity)."""
    torch.manual_seed(seed)
    options = {"realnvp": {"num_layers": 3, "hidden": 5}, "maf": {"num_layers": 2, "hidden_sizes": [7]}}[name]
    model = build_model(name, event_shape, levels, **options).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4 if name == "realnvp" else 0.15)  # MAF's scales compound over the dimensions
    return model.eval()


def images(levels: int) -> torch.Tensor:
    """Every 2x2 image with ``levels`` levels, in base-``levels`` order."""
    return torch.tensor(list(itertools.product(range(levels), repeat=4))).reshape(-1, 1, 2, 2)


@torch.no_grad()
def discrete_probs(model, xs: torch.Tensor) -> torch.Tensor:
    """P(x) = int_[0,1)^4 p(x + u) du for each image, by quasi-Monte Carlo over u (one batched pass)."""
    u = torch.from_numpy(qmc.Sobol(4, seed=0).random(2 ** 11)).reshape(1, -1, 1, 2, 2)
    v = (xs.double()[:, None] + u).reshape(-1, 1, 2, 2)
    return model.continuous_log_prob(v).exp().reshape(len(xs), -1).mean(1)


@pytest.mark.parametrize("name", FLOWS)
def test_inverse_undoes_the_transform(name):
    model = tiny_flow(name, (2, 3, 2), 4)
    y = torch.randn(5, 2, 3, 2, dtype=torch.float64)
    z, _ = model.transform(y)
    assert not torch.allclose(z, y), "the transform is the identity: the test would prove nothing"
    torch.testing.assert_close(model.inverse(z), y, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", FLOWS)
def test_log_det_equals_the_autograd_jacobian(name):
    model = tiny_flow(name, (2, 3, 2), 4)
    y = torch.randn(3, 2, 3, 2, dtype=torch.float64)
    _, log_det = model.transform(y)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: model.transform(v[None])[0].flatten(), y[b])
        sign, expected = torch.linalg.slogdet(jac.reshape(12, 12))
        assert sign > 0
        torch.testing.assert_close(log_det[b], expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("levels", [2, 3])
def test_dequantized_likelihood_is_normalised_and_bounds_the_discrete_one(name, levels):
    """P(x) = int_[0,1)^4 p(x + u) du sums to one over every 2x2 image (quasi-Monte Carlo over u), and the
    reported log_prob (one u per call) is below log P(x) on average: a lower bound, as the model says."""
    model = tiny_flow(name, (1, 2, 2), levels)
    xs = images(levels)
    probs = discrete_probs(model, xs)
    torch.manual_seed(0)
    with torch.no_grad():
        bound = model.log_prob(xs.repeat(100, 1, 1, 1)).reshape(100, len(xs)).mean(0)
    assert abs(probs.sum().item() - 1.0) < 5e-3, probs.sum()
    assert (bound <= probs.log() + 1e-2).all() and bound.sum() < probs.log().sum()
    assert model.likelihood == "bound"


@pytest.mark.parametrize("name", FLOWS)
def test_samples_are_levels_and_reproducible(name):
    model = tiny_flow(name, (1, 3, 3), 4)
    a = model.sample(5, generator=torch.Generator().manual_seed(1))
    b = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 1, 3, 3) and a.dtype == torch.long and 0 <= int(a.min()) and int(a.max()) < 4
    assert torch.equal(a, b)
    with pytest.raises(InputError, match="per-position"):
        model.log_prob_positions(a)


@pytest.mark.parametrize("name", FLOWS)
def test_sampling_draws_from_the_density(name):
    """Images drawn by inverting the flow have the frequencies P(x) of the density the flow scores."""
    model = tiny_flow(name, (1, 2, 2), 2)
    probs = discrete_probs(model, images(2))
    n = 8000
    samples = model.sample(n, generator=torch.Generator().manual_seed(0)).reshape(n, 4)
    freq = torch.bincount((samples * torch.tensor([8, 4, 2, 1])).sum(1), minlength=16).double() / n
    assert (freq - probs).abs().sum() / 2 < 0.04, (freq, probs)  # the sampling error is about 0.02 here
