"""MADE: per-mask autoregressive masks, the normalised eval-mode ensemble, and reproducible sampling."""

from __future__ import annotations

import itertools

import pytest
import torch
from sampling_stats import frequencies, total_variation, tv_bound

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads import Bernoulli, Categorical
from chainrule.modalities.image.models.made import MADE


def _made(event_shape=(1, 2, 2), head=None, num_masks=3, **kw) -> MADE:
    torch.manual_seed(0)
    model = MADE(event_shape, head or Bernoulli(), hidden_sizes=kw.pop("hidden_sizes", [24, 24]),
                 num_masks=num_masks, mask_seed=kw.pop("mask_seed", 7), **kw)
    with torch.no_grad():  # larger weights than the default init, so the masks' models differ clearly
        for p in model.parameters():
            p.mul_(4.0)
    return model.eval()


def _all_binary(h: int, w: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=h * w))).reshape(-1, 1, h, w)


def test_orderings_are_permutations_and_mask0_is_raster() -> None:
    model = _made((3, 3, 4), Categorical(4), num_masks=5)
    orders = [model.orders[k] for k in range(5)]
    for k, order in enumerate(orders):
        model.use_mask(k)
        assert torch.equal(model.ordering(), order)
        assert torch.equal(order.sort().values, torch.arange(12))
    assert torch.equal(orders[0], torch.arange(12))
    assert len({tuple(o.tolist()) for o in orders}) > 1


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("order_agnostic", [False, True])
def test_each_mask_is_autoregressive(direct: bool, order_agnostic: bool) -> None:
    model = _made((3, 3, 4), Categorical(4), num_masks=4, direct=direct, order_agnostic=order_agnostic)
    inputs = torch.randn(2, 3, 3, 4, requires_grad=True)
    for k in range(4):
        model.use_mask(k)
        order = model.ordering().tolist()
        out = model.network(inputs).flatten(2)  # (B, P, N)
        for i, pos in enumerate(order):
            (grad,) = torch.autograd.grad(out[:, :, pos].sum(), inputs, retain_graph=True)
            grad = grad.abs().sum((0, 1)).flatten()
            assert (grad[order[i:]] == 0).all(), f"mask {k}: position {pos} sees itself or later positions"
            if direct and i > 0:
                assert (grad[order[:i]] > 0).all()


def test_masks_are_deterministic_in_seed() -> None:
    a, b, c = _made(mask_seed=1), _made(mask_seed=1), _made(mask_seed=2, order_agnostic=True)
    for name, buf in a.named_buffers():
        assert torch.equal(buf, dict(b.named_buffers())[name])
    assert any(not torch.equal(buf, dict(c.named_buffers())[n]) for n, buf in a.named_buffers())


def test_training_mode_uses_random_masks_from_global_rng() -> None:
    model = _made(num_masks=4).train()
    x = _all_binary(2, 2)

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [model.log_prob(x) for _ in range(6)]

    first, again = run(0), run(0)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert len({tuple(t.tolist()) for t in first}) > 1


@pytest.mark.parametrize("num_masks", [1, 4])
def test_eval_ensemble_is_normalised(num_masks: int) -> None:
    model = _made(num_masks=num_masks, direct=True)
    x = _all_binary(2, 2)
    total = model.log_prob(x).exp().sum().item()
    assert abs(total - 1.0) < 1e-5
    if num_masks > 1:  # it really is a mixture, not mask 0 alone
        model.use_mask(0)
        single = super(MADE, model).log_prob(x)
        assert not torch.allclose(single, model.log_prob(x), atol=1e-3)
        assert model.current_mask == 0


def test_class_conditional_ensemble_is_normalised() -> None:
    model = _made(num_classes=3, num_masks=3)
    with torch.no_grad():
        for bias in (model.cond_hidden, model.cond_out):
            bias.embed.weight.normal_()
    x = _all_binary(2, 2)
    for y in range(3):
        total = model.log_prob(x, torch.full((16,), y)).exp().sum().item()
        assert abs(total - 1.0) < 1e-5


def test_sampling_is_reproducible_and_follows_the_ensemble() -> None:
    model = _made(num_masks=4)
    first = model.sample(6, generator=torch.Generator().manual_seed(3))
    again = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert first.shape == (6, 1, 2, 2) and torch.equal(first, again)
    other = model.sample(6, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(first, other)

    n = 40_000
    draws = model.sample(n, generator=torch.Generator().manual_seed(5))
    codes = (draws.flatten(1) * torch.tensor([8, 4, 2, 1])).sum(1)
    with torch.no_grad():
        probs = model.log_prob(_all_binary(2, 2)).double().exp()
        per_mask = []
        for k in range(model.num_masks):
            model.use_mask(k)
            per_mask.append(AutoregressiveModel.log_prob(model, _all_binary(2, 2)).double().exp())
        model.use_mask(0)
    # the bound (derived in sampling_stats) must separate the ensemble from what a wrong mask choice samples:
    # any single mask, or the mixture that leaves one mask out, is more than 3 bounds away
    bound = tv_bound(n, 16)
    wrong = per_mask + [torch.stack(per_mask[:k] + per_mask[k + 1:]).mean(0) for k in range(model.num_masks)]
    assert min(total_variation(probs, q) for q in wrong) > 3 * bound
    tv = total_variation(frequencies(codes, 16), probs)
    assert tv < bound, f"total variation to the ensemble {tv:.4f} >= {bound:.4f}"


def test_sampling_keeps_known_values_and_restores_mask() -> None:
    model = _made(num_masks=3, num_classes=2)
    model.use_mask(2)
    x_given = torch.ones(5, 1, 2, 2, dtype=torch.long)
    known = torch.zeros(5, 2, 2, dtype=torch.bool)
    known[:, 0, :] = True
    out = model.sample(5, cond=torch.tensor([0, 1, 0, 1, 1]), x_given=x_given, known=known,
                       temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert (out[:, 0, 0, :] == 1).all()
    assert model.current_mask == 2
