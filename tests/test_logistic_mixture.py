"""Discretized logistic mixture head: exact normalisation, channel ordering, sampling frequencies."""

from __future__ import annotations

import itertools

import pytest
import torch

from chainrule.core.heads import build_head
from chainrule.core.heads.logistic_mixture import DiscretizedLogisticMixture


def all_outcomes(levels: int, channels: int) -> torch.Tensor:
    """Every value of one pixel, (K^C, C, 1, 1)."""
    grid = list(itertools.product(range(levels), repeat=channels))
    return torch.tensor(grid).reshape(-1, channels, 1, 1)


def pixel_probs(head: DiscretizedLogisticMixture, params: torch.Tensor, channels: int) -> torch.Tensor:
    """Joint probabilities of one pixel, shaped (K,) * C, for params (P,)."""
    x = all_outcomes(head.levels, channels)
    lp = head.log_prob(params.reshape(1, -1, 1, 1).expand(len(x), -1, 1, 1), x)
    return lp.exp().reshape((head.levels,) * channels)


def random_params(head: DiscretizedLogisticMixture, channels: int, seed: int, scale: float = 1.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(head.num_params(channels), generator=g, dtype=torch.float64) * scale


@pytest.mark.parametrize(("levels", "channels", "num_mix"),
                         [(3, 3, 2), (4, 1, 3), (256, 1, 5), (2, 1, 1), (2, 3, 4), (5, 3, 3)])
def test_normalised_over_all_outcomes(levels: int, channels: int, num_mix: int) -> None:
    head = DiscretizedLogisticMixture(levels=levels, num_mix=num_mix)
    for seed in range(3):
        p = pixel_probs(head, random_params(head, channels, seed), channels)
        assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
        # float32 too
        p32 = pixel_probs(head, random_params(head, channels, seed).float(), channels)
        assert p32.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_extreme_params_stay_finite_with_finite_gradients() -> None:
    head = DiscretizedLogisticMixture(levels=256, num_mix=5)
    params = (torch.randn(4, head.num_params(3), 3, 3) * 30).requires_grad_()
    params.data[:, 20:35] = torch.linspace(-20, 20, 15).reshape(1, 15, 1, 1)  # log-scales, very small to huge
    x = torch.randint(0, 256, (4, 3, 3, 3))
    x[0] = 0
    x[1] = 255
    lp = head.log_prob(params, x)
    lp.sum().backward()
    assert torch.isfinite(lp).all() and (lp <= 1e-6).all()
    assert torch.isfinite(params.grad).all()


def test_num_params_and_registry() -> None:
    head = build_head("logistic_mixture", 17, num_mix=4)
    assert isinstance(head, DiscretizedLogisticMixture)
    assert (head.levels, head.num_mix) == (17, 4)
    assert head.num_params(1) == 12 and head.num_params(3) == 40


def sub_params(head: DiscretizedLogisticMixture, params: torch.Tensor, keep: int) -> torch.Tensor:
    """The params of the first ``keep`` channels of a 3-channel pixel, as a ``keep``-channel head."""
    m = head.num_mix
    logits, means, log_scales, coeffs = params.split([m, 3 * m, 3 * m, 3 * m])
    kept_coeffs = coeffs[: keep * (keep - 1) // 2 * m]  # pairs (1,0), (2,0), (2,1) in order
    return torch.cat([logits, means[: keep * m], log_scales[: keep * m], kept_coeffs])


@pytest.mark.parametrize("num_mix", [1, 3])
def test_channel_ordering(num_mix: int) -> None:
    """The marginal of R is the 1-channel head on R's params (B and G never enter it), and the marginal of
    (R, G) is the 2-channel head on the (R, G) params (B never enters p(G | R))."""
    head = DiscretizedLogisticMixture(levels=4, num_mix=num_mix)
    params = random_params(head, 3, seed=7)
    joint = pixel_probs(head, params, 3)
    p_r = pixel_probs(head, sub_params(head, params, 1), 1)
    p_rg = pixel_probs(head, sub_params(head, params, 2), 2)
    torch.testing.assert_close(joint.sum((1, 2)), p_r, atol=1e-10, rtol=0)
    torch.testing.assert_close(joint.sum(2), p_rg, atol=1e-10, rtol=0)
    # changing the B-coefficients leaves p(R, G) unchanged but changes the joint
    other = params.clone()
    other[-2 * num_mix:] += 1.0
    torch.testing.assert_close(pixel_probs(head, other, 3).sum(2), p_rg, atol=1e-10, rtol=0)
    assert not torch.allclose(pixel_probs(head, other, 3), joint)


def test_single_component_factorises_through_coefficients() -> None:
    """With one component, p(G | R) is a discretized logistic with mean mu_G + c0 * R."""
    head = DiscretizedLogisticMixture(levels=3, num_mix=1)
    params = random_params(head, 3, seed=3)
    joint = pixel_probs(head, params, 3)
    p_g_given_r = joint.sum(2) / joint.sum((1, 2)).unsqueeze(1)
    for r in range(3):
        value_r = r * 1.0 - 1.0  # levels 0, 1, 2 -> -1, 0, 1
        one = torch.stack([params[0], params[2] + torch.tanh(params[7]) * value_r, params[5]])
        torch.testing.assert_close(p_g_given_r[r], pixel_probs(head, one, 1), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("levels", "channels"), [(3, 3), (5, 1)])
def test_sampling_frequencies_match_probabilities(levels: int, channels: int) -> None:
    head = DiscretizedLogisticMixture(levels=levels, num_mix=2)
    params = random_params(head, channels, seed=11, scale=1.0).float()
    probs = pixel_probs(head, params.double(), channels).flatten()
    n = 40_000
    draws = head.sample(params.reshape(1, -1, 1, 1).expand(n, -1, 1, 1).contiguous(),
                        generator=torch.Generator().manual_seed(0))
    assert draws.shape == (n, channels, 1, 1) and draws.min() >= 0 and draws.max() < levels
    index = torch.zeros(n, dtype=torch.long)
    for c in range(channels):
        index = index * levels + draws[:, c, 0, 0]
    freq = torch.bincount(index, minlength=levels**channels).double() / n
    # each frequency is within 5 binomial standard deviations (false-failure odds ~1e-6 per outcome)
    tol = 5 * (probs * (1 - probs) / n).sqrt() + 1e-3
    assert ((freq - probs).abs() <= tol).all(), (freq, probs)


def test_temperature() -> None:
    head = DiscretizedLogisticMixture(levels=256, num_mix=3)
    params = torch.randn(2, head.num_params(3), 4, 4)
    gen = torch.Generator().manual_seed(0)
    cold = head.sample(params, temperature=0.0, generator=gen)
    assert torch.equal(cold, head.sample(params, temperature=0.0, generator=gen))  # deterministic
    near = head.sample(params, temperature=1e-6, generator=gen)
    assert (near - cold).abs().max() <= 1
