"""DDPM: the variational bound against a direct Monte Carlo computation and against the exact likelihood of a
one-pixel, two-step model (integrated on a grid); seeded DDPM and DDIM sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from chainrule.modalities.image.models.ddpm import ddim_step
from chainrule.modalities.registry import build_model


def tiny_ddpm(levels: int, seed: int = 0, **options):
    torch.manual_seed(seed)
    model = build_model("ddpm", (1, 1, 1), levels, **{"steps": 2, "hidden": 4, "num_blocks": 1, **options}).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.15)
        betas = torch.tensor([0.05, 0.5], dtype=torch.float64)  # two moderate steps keep the integrals on a grid
        model.betas.copy_(betas)
        model.alpha_bars.copy_(torch.cumprod(1 - betas, 0))
    return model.eval()


def reverse_mean(model, x_t: torch.Tensor, step: int) -> torch.Tensor:
    """mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(1 - beta_t), from the definition."""
    beta, abar = model.betas[step - 1], model.alpha_bars[step - 1]
    eps = model.predict_noise(x_t, torch.full((len(x_t),), step))
    return (x_t - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()


def decoder_log_prob(model, x0: torch.Tensor, x1: torch.Tensor, levels: int) -> torch.Tensor:
    """log P(x_0 | x_1): the N(mu, beta_1) mass of the level's bin, computed from the CDF directly."""
    normal = Normal(reverse_mean(model, x1, 1), model.betas[0].sqrt())
    edges = torch.linspace(-1, 1, levels) + 1.0 / (levels - 1)
    upper = torch.where(x0 >= 1, torch.ones_like(x0), normal.cdf(x0 + 1.0 / (levels - 1)))
    lower = torch.where(x0 <= -1, torch.zeros_like(x0), normal.cdf(x0 - 1.0 / (levels - 1)))
    assert len(edges) == levels
    return (upper - lower).log()


@torch.no_grad()
def test_the_bound_equals_a_direct_monte_carlo_elbo():
    """E_q[log p(x_0:2) - log q(x_1:2 | x_0)], sampling the forward chain one step at a time, equals log_prob."""
    levels, n = 3, 200_000
    model = tiny_ddpm(levels)
    gen = torch.Generator().manual_seed(0)
    for level in range(levels):
        x = torch.full((1, 1, 1, 1), level)
        x0 = model.to_unit(x).expand(n, 1, 1, 1)
        b1, b2 = model.betas
        x1 = (1 - b1).sqrt() * x0 + b1.sqrt() * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        x2 = (1 - b2).sqrt() * x1 + b2.sqrt() * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        log_q = Normal((1 - b1).sqrt() * x0, b1.sqrt()).log_prob(x1) + Normal((1 - b2).sqrt() * x1,
                                                                               b2.sqrt()).log_prob(x2)
        log_p = (Normal(0.0, 1.0).log_prob(x2) + Normal(reverse_mean(model, x2, 2), b2.sqrt()).log_prob(x1)
                 + decoder_log_prob(model, x0, x1, levels))
        w = (log_p - log_q).flatten()
        bound = model.log_prob(x.expand(20_000, 1, 1, 1))  # analytic KLs; only the decoder term is sampled
        se = (w.var() / n + bound.var() / len(bound)).sqrt()
        assert abs(bound.mean() - w.mean()) < 4 * se + 1e-3, (level, bound.mean(), w.mean(), se)


@torch.no_grad()
@pytest.mark.parametrize("levels", [2, 4])
def test_the_bound_is_below_the_exact_likelihood_which_is_normalised(levels):
    """P(x_0) = int int N(x_2) p(x_1 | x_2) P(x_0 | x_1) on a grid: it sums to one over the levels, and the
    bound (every term, averaged over its sampled x_1) lies below log P(x_0)."""
    model = tiny_ddpm(levels, seed=1)
    g2, g1 = torch.linspace(-7, 7, 561, dtype=torch.float64), torch.linspace(-9, 9, 721, dtype=torch.float64)
    d2, d1 = float(g2[1] - g2[0]), float(g1[1] - g1[0])
    x2 = g2.reshape(-1, 1, 1, 1)
    mean1 = reverse_mean(model, x2, 2).reshape(-1, 1)
    log_p12 = Normal(0.0, 1.0).log_prob(g2)[:, None] + Normal(mean1, model.betas[1].sqrt()).log_prob(g1[None])
    exact = []
    for level in range(levels):
        x0 = model.to_unit(torch.tensor(level)).expand(len(g1)).reshape(-1, 1, 1, 1)
        log_dec = decoder_log_prob(model, x0, g1.reshape(-1, 1, 1, 1), levels).reshape(1, -1)
        exact.append(torch.logsumexp((log_p12 + log_dec).flatten(), 0) + math.log(d1 * d2))
    exact = torch.stack(exact)
    assert abs(exact.exp().sum().item() - 1.0) < 1e-4
    x = torch.arange(levels).reshape(-1, 1, 1, 1).repeat(500, 1, 1, 1)
    bound = model.log_prob(x).reshape(500, levels).mean(0)
    assert (bound <= exact + 0.01).all(), (bound, exact)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_is_reproducible_and_gives_levels(sampler):
    model = build_model("ddpm", (1, 4, 4), 4, steps=6, hidden=4, num_blocks=1, sampler=sampler,
                        sample_steps=3).eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(2))
    b = model.sample(3, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 1, 4, 4) and a.dtype == torch.long and 0 <= int(a.min()) and int(a.max()) < 4
    assert torch.equal(a, b)


def test_training_loss_is_an_unbiased_estimate_of_the_bound():
    """The one-step training estimate (T x a random term) averages to the full bound."""
    model = tiny_ddpm(2, seed=2)
    x = torch.randint(0, 2, (1, 1, 1, 1)).expand(20_000, 1, 1, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        full = model.log_prob(x[:2000]).mean()
        model.train()
        sampled = model.log_prob(x)
    assert abs(sampled.mean() - full) < 4 * sampled.std() / math.sqrt(len(x)) + 0.01


def test_a_ddim_step_keeps_the_clamped_image_and_its_noise_on_the_forward_path():
    """After the predicted clean image is clamped to [-1, 1], the noise the step moves along must be the one that
    reproduces the current x with it (x = sqrt(abar) x0 + sqrt(1 - abar) eps); the network's raw noise beside a
    clamped image drifts off that path and saturates the samples over tens of steps."""
    torch.manual_seed(0)
    x = 2.0 * torch.randn(64, 1, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x)  # predictions whose clean image lies partly outside [-1, 1]
    abar, abar_next = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64)
    x0 = ((x - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
    assert (x0.abs() == 1).any()  # the case the step must handle
    x_next = ddim_step(x, eps, abar, abar_next)
    moved_along = (x_next - abar_next.sqrt() * x0) / (1 - abar_next).sqrt()  # the noise the step used
    torch.testing.assert_close(abar.sqrt() * x0 + (1 - abar).sqrt() * moved_along, x)
    inside = torch.rand_like(x) * 1.8 - 0.9  # a clean image inside the range: nothing to clamp, plain DDIM
    x = abar.sqrt() * inside + (1 - abar).sqrt() * eps
    plain = abar_next.sqrt() * inside + (1 - abar_next).sqrt() * eps
    torch.testing.assert_close(ddim_step(x, eps, abar, abar_next), plain)
