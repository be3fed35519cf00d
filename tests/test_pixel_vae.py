"""The VAE with a PixelCNN decoder: the decoder is causal given z, its bounds are ordered below the exact
likelihood, sampling is seeded and the cache changes nothing, and it trains from the command line."""

from __future__ import annotations

import math

import torch
from test_vae import exact_and_elbo, outcomes

from chainrule import api, cli
from chainrule.modalities.registry import build_model, model_class


def tiny_pixel_vae(seed: int = 0):
    """2x2 binary images, a one-dimensional latent (log p(x) is a 1-d integral) and a two-block decoder."""
    torch.manual_seed(seed)
    model = build_model("pixel_vae", (1, 2, 2), 2, latent=1, hidden=3, pixel_channels=4, pixel_blocks=1,
                        first_kernel_size=3, chunk=1 << 20).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.6)
        last = model.encoder[-1]  # q(z | x) wide and near the prior: a proposal that covers the posterior
        last.weight.mul_(0.2)
        last.bias.copy_(torch.tensor([0.0, 1.0], dtype=last.bias.dtype))
    return model.eval()


def test_decoder_is_causal_given_z():
    """Pixel i's parameters have zero gradient with respect to pixels >= i, and a non-zero one with respect to
    some earlier pixel and to z (so the test can see dependence when there is some)."""
    torch.manual_seed(0)
    model = build_model("pixel_vae", (1, 4, 4), 2, **model_class("pixel_vae", "image").TINY).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    inputs = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(1, model.latent, dtype=torch.float64, requires_grad=True)
    params = model.pixel_params(inputs, z).flatten(2)
    for i in range(16):
        g_x, g_z = torch.autograd.grad(params[:, :, i].sum(), (inputs, z), retain_graph=True)
        g_x = g_x.flatten()
        assert (g_x[i:] == 0).all(), f"pixel {i} reads pixels {(g_x[i:] != 0).nonzero().flatten().add(i).tolist()}"
        assert i == 0 or (g_x[:i] != 0).any(), f"pixel {i} reads no earlier pixel"
        assert (g_z != 0).any(), f"pixel {i} ignores z"


def test_quadrature_is_a_distribution():
    """The exact likelihood (a 1-d integral over z of the autoregressive decoder) sums to one over the 16 images."""
    exact, _ = exact_and_elbo(tiny_pixel_vae(), outcomes())
    assert abs(exact.exp().sum().item() - 1.0) < 1e-6


@torch.no_grad()
def test_elbo_below_iwae_below_tighter_iwae_below_log_p():
    """E[ELBO] <= E[IWAE_5] <= E[IWAE_50] <= log p(x) per image (four standard errors), strictly on the whole."""
    model = tiny_pixel_vae()
    x = outcomes()
    exact, elbo = exact_and_elbo(model, x)
    gen = torch.Generator().manual_seed(0)

    def mean_bound(k: int, reps: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = model.iwae(x.repeat(reps, 1, 1, 1), k, generator=gen).reshape(reps, len(x))
        return b.mean(0), b.std(0) / math.sqrt(reps)

    iw5, se5 = mean_bound(5, 1000)
    iw50, se50 = mean_bound(50, 400)
    for low, high, se in ((elbo, iw5, se5), (iw5, iw50, se5 + se50), (iw50, exact, se50)):
        assert (low <= high + 4 * se).all(), (low, high)
        assert low.sum() < high.sum() - 4 * se.pow(2).sum().sqrt(), (low, high)
    assert model.log_prob(x).shape == (16,) and (model.kl(x) > 0).all()


@torch.no_grad()
def test_each_latent_scores_its_own_image():
    """The batched ``decoder_log_prob`` over (samples, images) equals scoring each pair on its own."""
    model = tiny_pixel_vae()
    x = outcomes()[[3, 9, 14]]
    z = torch.randn(4, 3, 1, dtype=torch.float64)
    batched = model.decoder_log_prob(x, z)
    for s in range(4):
        for b in range(3):
            params = model.pixel_params(model.encode(x[b:b + 1]).double(), z[s, b:b + 1])
            one = model.head.log_prob(params, x[b:b + 1]).sum()
            torch.testing.assert_close(batched[s, b], one, rtol=0, atol=1e-12)


def test_sampling_is_seeded_and_the_cache_changes_nothing():
    model = build_model("pixel_vae", (1, 6, 5), 4, latent=3, hidden=4, pixel_channels=6, pixel_blocks=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    a = model.sample(5, generator=torch.Generator().manual_seed(5))
    b = model.sample(5, generator=torch.Generator().manual_seed(5), use_cache=False)
    c = model.sample(5, generator=torch.Generator().manual_seed(6))
    assert a.shape == (5, 1, 6, 5) and a.dtype == torch.long and int(a.max()) < 4
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_trains_from_the_cli(tmp_path):
    """``chainrule train digits pixel_vae`` runs, evaluates to a finite bound and lowers it from the start."""
    run = tmp_path / "pvae"
    settings = ["data.binarize=threshold", "train.steps=30", "train.lr=1e-2", "train.batch_size=64",
                "train.warmup_steps=2", "train.eval_every=0", "train.checkpoint_every=0", "train.progress=false",
                "output.samples=2", "model.latent=4", "model.hidden=8", "model.pixel_channels=8",
                "model.pixel_blocks=1", "model.iwae_samples=4"]
    sets = [a for s in settings for a in ("--set", s)]
    assert cli.main(["train", "digits", "pixel_vae", "--run", str(run), *sets]) == 0
    result = api.evaluate(run)
    assert math.isfinite(result["nll_nats"]) and result["nll_nats"] < 64 * math.log(2), result
