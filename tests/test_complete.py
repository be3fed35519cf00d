"""Completion (fill in the lower half of images given the upper half): the given pixels are kept exactly, and the
completions are samples of the model's conditional ``p(x_unknown | x_known)``, checked by frequencies against that
conditional computed exactly by enumerating ``log_prob`` over every image of a tiny event."""

from __future__ import annotations

import itertools

import pytest
import torch
from sampling_stats import frequencies, total_variation, tv_bound

from chainrule import api
from chainrule.core.contract import AutoregressiveModel
from chainrule.modalities.registry import build_model, model_class

#: one example of each sampling path of the shared loop: teacher-forced re-run (made), cached step (pixel_lstm),
#: rows-so-far re-run of a row-causal network (pixelcnn)
PATHS = ["made", "pixel_lstm", "pixelcnn"]
SHAPE = (1, 2, 2)
PER_GIVEN = 4000  # completions per given upper row


def all_images() -> torch.Tensor:
    """The 16 binary 2x2 images, (16, 1, 2, 2); image ``4 * top + bottom`` has rows coded ``top``, ``bottom``."""
    return torch.tensor(list(itertools.product([0, 1], repeat=4))).reshape(16, *SHAPE)


def fitted(name: str) -> torch.nn.Module:
    """A tiny model fitted to images whose lower row copies the upper one with 10% flips, so the lower row's
    conditional depends strongly on what is given."""
    g = torch.Generator().manual_seed(0)
    top = torch.randint(0, 2, (512, 2), generator=g)
    flips = (torch.rand(512, 2, generator=g) < 0.1).long()
    data = torch.stack([top, top ^ flips], 1).reshape(512, *SHAPE)
    torch.manual_seed(0)
    model = build_model(name, SHAPE, 2, **model_class(name, "image").TINY)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(300):
        opt.zero_grad()
        model.loss(data).backward()
        opt.step()
    return model.eval()


def complete_bottom_rows(model: torch.nn.Module, per_given: int) -> torch.Tensor:
    """Complete each of the 4 possible upper rows ``per_given`` times; the lower rows' codes ``(4, per_given)``
    (after checking that the given pixels were kept exactly)."""
    given = all_images()[::4].repeat_interleave(per_given, 0)  # each upper row, per_given times (lower row 0)
    known = torch.zeros(len(given), 2, 2, dtype=torch.bool)
    known[:, 0] = True
    out = model.sample(len(given), x_given=given, known=known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :, 0], given[:, :, 0])  # the given pixels are kept exactly
    return (out[:, 0, 1, 0] * 2 + out[:, 0, 1, 1]).reshape(4, per_given)


def assert_follows(bottom: torch.Tensor, conditional: torch.Tensor, label: str) -> None:
    """Each upper row's completions have the frequencies of ``conditional[top]`` (4 outcomes), within the bound."""
    bound = tv_bound(bottom.shape[1], 4)
    for top in range(4):
        tv = total_variation(frequencies(bottom[top], 4), conditional[top])
        assert tv < bound, f"{label}, given top row {top:02b}: TV {tv:.4f} >= {bound:.4f}"


@pytest.mark.parametrize("name", PATHS)
def test_completions_are_samples_of_the_exact_conditional(name: str) -> None:
    model = fitted(name)
    with torch.no_grad():
        joint = model.log_prob(all_images()).double().exp().reshape(4, 4)  # [top code, bottom code]
    assert float(joint.sum()) == pytest.approx(1.0, abs=1e-5)
    conditional = joint / joint.sum(1, keepdim=True)  # p(bottom | top), one row per given top
    marginal = joint.sum(0)  # p(bottom): what completions ignoring the given top would follow
    # the check can tell the two apart
    assert min(total_variation(c, marginal) for c in conditional) > 3 * tv_bound(PER_GIVEN, 4)
    assert_follows(complete_bottom_rows(model, PER_GIVEN), conditional, name)


@pytest.mark.parametrize("order_agnostic,mask_seed", [(False, 7), (True, 3)])
def test_made_ensemble_completions_weigh_masks_by_the_given_pixels(order_agnostic: bool, mask_seed: int) -> None:
    """A MADE ensemble completes with the masks that order the given pixels first (all masks for raster-only
    ensembles; 3 of 4 with ``mask_seed=3``), each chosen with probability proportional to its likelihood of the
    given pixels: exactly the conditional of the ensemble of those masks."""
    torch.manual_seed(0)
    model = build_model("made", SHAPE, 2, hidden_sizes=[24, 24], num_masks=4, mask_seed=mask_seed,
                        order_agnostic=order_agnostic)
    with torch.no_grad():  # larger weights than the default init, so the masks' models differ clearly
        for p in model.parameters():
            p.mul_(4.0)
    model.eval()
    per_mask = []
    with torch.no_grad():
        for k in range(model.num_masks):
            model.use_mask(k)
            per_mask.append(AutoregressiveModel.log_prob(model, all_images()).double().exp().reshape(4, 4))
        model.use_mask(0)
        ensemble = model.log_prob(all_images()).double().exp().reshape(4, 4)
    usable = [k for k in range(model.num_masks) if set(model.orders[k, :2].tolist()) == {0, 1}]
    assert usable == ([0, 1, 2, 3] if not order_agnostic else [0, 1, 3])
    joint = torch.stack([per_mask[k] for k in usable]).mean(0)
    if not order_agnostic:
        torch.testing.assert_close(joint, ensemble)  # the usable masks are the whole ensemble
    conditional = joint / joint.sum(1, keepdim=True)
    # the check can see masks chosen without regard to the given pixels (uniformly)
    uniform = torch.stack([per_mask[k] / per_mask[k].sum(1, keepdim=True) for k in usable]).mean(0)
    per_given = 10_000
    assert max(total_variation(a, b) for a, b in zip(conditional, uniform, strict=True)) > 3 * tv_bound(per_given, 4)
    assert_follows(complete_bottom_rows(model, per_given), conditional, f"made ensemble (mask_seed {mask_seed})")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A histogram run on the digits (fitted by counting in a second)."""
    return api.train("digits", "histogram", overrides=["output.samples=0"],
                     run_dir=tmp_path_factory.mktemp("complete") / "hist")


def test_api_complete_keeps_the_upper_half_and_samples_the_lower(digits_run) -> None:
    originals, given, out = api.complete(digits_run, n=16, seed=3)
    n, _, h, _ = originals.shape
    assert out.shape == originals.shape == given.shape and n == 16
    upper = slice(0, h // 2)
    assert torch.equal(out[:, :, upper], originals[:, :, upper])  # the given half, exactly
    assert torch.equal(given[:, :, upper], originals[:, :, upper]) and not given[:, :, h // 2:].any()
    # the lower half is drawn, not copied: 16 images x 32 pixels never all match the originals by chance
    assert not torch.equal(out[:, :, h // 2:], originals[:, :, h // 2:])
    again = api.complete(digits_run, n=16, seed=3)[2]
    assert torch.equal(out, again)  # seeded
