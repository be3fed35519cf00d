"""Histogram baseline: closed-form counts, inverse-CDF sampling, normalisation."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from chainrule.core.errors import ConfigError
from chainrule.modalities.registry import build_model


def dataset(x: torch.Tensor, y: torch.Tensor | None = None) -> SimpleNamespace:
    """The part of ImageDataset that fit_counts uses."""
    return SimpleNamespace(all=lambda: (x, y))


# 4 images, 1 channel, 1x2, 3 levels
HAND = torch.tensor([[0, 2], [0, 1], [1, 1], [0, 1]]).reshape(4, 1, 1, 2)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.5])
def test_counts_give_expected_probabilities(alpha: float) -> None:
    model = build_model("histogram", (1, 1, 2), 3)
    model.fit_counts(dataset(HAND), alpha=alpha)
    counts = torch.tensor([[3.0, 1.0, 0.0], [0.0, 3.0, 1.0]])  # position 0, position 1
    expected = (counts + alpha) / (4 + 3 * alpha)
    probs = model.exact_probs()
    assert probs.shape == (1, 3, 1, 2)
    torch.testing.assert_close(probs[0, :, 0, :].T.double(), expected.double(), atol=1e-6, rtol=0)
    # log_prob is the sum of the per-position log-frequencies
    x = torch.tensor([[1, 2]]).reshape(1, 1, 1, 2)
    lp = model.log_prob(x).item()
    if alpha > 0:
        assert lp == pytest.approx(float(expected[0, 1].log() + expected[1, 2].log()), abs=1e-5)


def test_bernoulli_counts_and_classes() -> None:
    x = torch.tensor([[1, 0], [1, 1], [0, 0], [1, 0]]).reshape(4, 1, 1, 2)
    y = torch.tensor([0, 0, 1, 1])
    model = build_model("histogram", (1, 1, 2), 2, num_classes=2)  # auto head: Bernoulli
    model.fit_counts(dataset(x, y), alpha=0.0)
    torch.testing.assert_close(model.exact_probs()[0, 1, 0], torch.tensor([0.75, 0.25]))
    per_class = model.exact_probs(torch.tensor([0, 1]))
    torch.testing.assert_close(per_class[:, 0, 1, 0], torch.tensor([[1.0, 0.5], [0.5, 0.0]]))
    # a zero-probability value gets a huge but finite penalty
    lp = model.log_prob(torch.tensor([[1, 1]]).reshape(1, 1, 1, 2), torch.tensor([1]))
    assert torch.isfinite(lp).all() and lp.item() < -1000


def test_normalised_on_2x2_three_levels() -> None:
    torch.manual_seed(0)
    model = build_model("histogram", (1, 2, 2), 3)
    with torch.no_grad():
        model.logits.normal_()
    xs = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        total = model.log_prob(xs).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_inverse_cdf_sampling_matches_exact_probs() -> None:
    torch.manual_seed(0)
    model = build_model("histogram", (2, 2, 3), 4, head="categorical")
    with torch.no_grad():
        model.logits.normal_(0.0, 1.5)
    n = 20_000
    x = model.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2, 2, 3)
    freq = torch.nn.functional.one_hot(x, 4).double().mean(0).movedim(-1, 1)  # (C, K, H, W)
    probs = model.exact_probs().double()
    # 5 binomial standard deviations per cell: a false failure has odds ~1e-6 per cell
    tol = 5 * (probs * (1 - probs) / n).sqrt() + 1e-3
    assert ((freq - probs).abs() <= tol).all()
    # same seed, same samples; temperature 0 gives the most probable value everywhere
    torch.testing.assert_close(model.sample(n, generator=torch.Generator().manual_seed(0)), x)
    cold = model.sample(3, temperature=0.0)
    assert torch.equal(cold, probs.argmax(1).expand(3, -1, -1, -1))


def test_sampling_keeps_known_values() -> None:
    model = build_model("histogram", (1, 2, 2), 3)
    given = torch.full((5, 1, 2, 2), 2)
    known = torch.zeros(5, 2, 2, dtype=torch.bool)
    known[:, 0] = True
    with torch.no_grad():
        model.logits.zero_()
        model.logits[..., 0] = torch.tensor([10.0, -10.0, -10.0]).reshape(3, 1)  # column 0 is ~surely 0
    out = model.sample(5, x_given=given, known=known, generator=torch.Generator().manual_seed(0))
    assert (out[:, :, 0] == 2).all() and (out[:, :, 1, 0] == 0).all()


def test_closed_form_flag_and_errors() -> None:
    assert build_model("histogram", (1, 2, 2), 3).closed_form
    dlm = build_model("histogram", (1, 2, 2), 3, head="logistic_mixture")
    assert not dlm.closed_form  # trained by SGD instead
    with pytest.raises(ConfigError):
        dlm.fit_counts(dataset(torch.zeros(2, 1, 2, 2, dtype=torch.long)))
    with pytest.raises(ConfigError):
        build_model("histogram", (1, 2, 2), 3).fit_counts(dataset(torch.full((2, 1, 2, 2), 5)))
