"""The VAE's bounds against the exact likelihood of a model small enough to integrate, and seeded sampling."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from chainrule.core.errors import InputError
from chainrule.core.latent.bounds import diagonal_normal_log_prob, standard_normal_log_prob
from chainrule.modalities.registry import build_model

GRID = torch.linspace(-12.0, 12.0, 6001, dtype=torch.float64)[:, None]  # z grid for the 1-d latent


def tiny_vae(seed: int = 0):
    """2x2 binary images and a one-dimensional latent: log p(x) is a 1-d integral, done on a fine grid."""
    torch.manual_seed(seed)
    model = build_model("vae", (1, 2, 2), 2, latent=1, hidden=3, chunk=1 << 20).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.6)
        last = model.encoder[-1]  # q(z | x) wide and near the prior: a proposal that covers the posterior
        last.weight.mul_(0.2)
        last.bias.copy_(torch.tensor([0.0, 1.0], dtype=last.bias.dtype))
    return model.eval()


def outcomes() -> torch.Tensor:
    return torch.tensor(list(itertools.product((0, 1), repeat=4))).reshape(16, 1, 2, 2)


@torch.no_grad()
def exact_and_elbo(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) = log int p(x|z) N(z) dz and the exact ELBO E_q[log p(x|z)] - KL, both by quadrature on GRID."""
    dz = float(GRID[1] - GRID[0])
    z = GRID[:, None, :].expand(len(GRID), len(x), 1)
    log_lik = model.decoder_log_prob(x, z)  # (grid, B)
    exact = torch.logsumexp(log_lik + standard_normal_log_prob(z), dim=0) + math.log(dz)
    mean, log_var = model.posterior(x)
    q = diagonal_normal_log_prob(z, mean, log_var).exp() * dz
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
    return exact, (q * log_lik).sum(0) - kl


def test_the_quadrature_is_a_distribution():
    """The exact likelihood used below sums to one over the 16 images (the reference itself is right)."""
    exact, _ = exact_and_elbo(tiny_vae(), outcomes())
    assert abs(exact.exp().sum().item() - 1.0) < 1e-6


@torch.no_grad()
def test_elbo_below_iwae_below_tighter_iwae_below_log_p():
    """E[ELBO] <= E[IWAE_5] <= E[IWAE_50] <= log p(x) per image (within four standard errors of the averages of
    2000 / 200 independent bounds), strictly so summed over the images, and IWAE_5000 reaches log p(x)."""
    model = tiny_vae()
    x = outcomes()
    exact, elbo = exact_and_elbo(model, x)
    gen = torch.Generator().manual_seed(0)

    def mean_bound(k: int, reps: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = model.iwae(x.repeat(reps, 1, 1, 1), k, generator=gen).reshape(reps, len(x))
        return b.mean(0), b.std(0) / math.sqrt(reps)

    iw5, se5 = mean_bound(5, 2000)
    iw50, se50 = mean_bound(50, 200)
    iw5000, _ = mean_bound(5000, 2)
    for low, high, se in ((elbo, iw5, se5), (iw5, iw50, se5 + se50), (iw50, exact, se50)):
        assert (low <= high + 4 * se).all(), (low, high)  # per image: never above the next bound
        assert low.sum() < high.sum() - 4 * se.pow(2).sum().sqrt(), (low, high)  # and below it on the whole
    torch.testing.assert_close(iw5000, exact, rtol=0, atol=0.05)


def test_chunking_changes_nothing_but_memory():
    """k samples evaluated one per chunk give the bound of one chunk of k when the draws are the same (fewer than
    16 normals per call, which torch draws one at a time, so the stream does not depend on the chunking)."""
    model = tiny_vae()
    x = outcomes()[5:6]
    whole = model.iwae(x, 12, generator=torch.Generator().manual_seed(3))
    model.chunk = 1
    pieces = model.iwae(x, 12, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(pieces, whole, rtol=0, atol=1e-9)


def test_eval_log_prob_is_the_iwae_bound_and_training_uses_the_elbo():
    model = tiny_vae()
    x = outcomes()
    assert model.log_prob(x).shape == (16,)
    model.train()
    loss = model.loss(x)
    loss.backward()
    assert loss.item() > 0 and all(p.grad is not None for p in model.parameters())


def test_sampling_is_reproducible_with_a_seed():
    model = build_model("vae", (1, 8, 8), 4, latent=3, hidden=4).eval()
    a = model.sample(6, generator=torch.Generator().manual_seed(5))
    b = model.sample(6, generator=torch.Generator().manual_seed(5))
    c = model.sample(6, generator=torch.Generator().manual_seed(6))
    assert a.shape == (6, 1, 8, 8) and a.dtype == torch.long and int(a.max()) < 4
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_completion_is_refused_in_one_line():
    model = build_model("vae", (1, 2, 2), 2, latent=1, hidden=2)
    with pytest.raises(InputError, match="completion"):
        model.sample(1, x_given=torch.zeros(1, 1, 2, 2, dtype=torch.long), known=torch.ones(1, 2, 2, dtype=bool))
