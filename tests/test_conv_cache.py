"""Cached sampling of the convolutional models and MADE: each step's conditional equals the teacher-forced
network's at that position, and cached and uncached sampling draw the same images under one seed."""

from __future__ import annotations

import pytest
import torch

from chainrule.core.contract import Condition
from chainrule.core.errors import InputError
from chainrule.modalities.registry import build_model

#: (model, options beyond the defaults): stacks at least two layers deep so a layer reads a cached layer
CASES = [
    ("pixelcnn", {"hidden_channels": 8, "num_blocks": 2, "output_channels": 16}),
    ("pixelcnn", {"hidden_channels": 8, "num_blocks": 1, "output_channels": 16, "first_kernel_size": 3,
                  "kernel_size": 5}),
    ("gated_pixelcnn", {"hidden_channels": 8, "num_layers": 3, "output_channels": 16}),
    ("gated_pixelcnn", {"hidden_channels": 6, "num_layers": 2, "output_channels": 8, "first_kernel_size": 3,
                        "kernel_size": 5}),
    ("pixelcnn_pp", {"num_filters": 8, "num_resnet": 2, "dropout": 0.0}),
    ("made", {"hidden_sizes": [32], "num_masks": 1}),
    ("made", {"hidden_sizes": [24, 16, 24], "num_masks": 3, "mask_seed": 3}),
    ("made", {"hidden_sizes": [], "num_masks": 2}),
    ("made", {"hidden_sizes": [24], "num_masks": 2, "direct": False}),
    ("conditional_pixelcnn", {"hidden_channels": 6, "num_layers": 2, "output_channels": 8, "condition_channels": 4,
                              "condition_layers": 1}),
    ("diagonal_bilstm", {"channels": 6, "hidden_size": 4, "num_layers": 2, "output_channels": 8,
                         "first_kernel_size": 3}),
    ("pixelsnail", {"channels": 6, "num_stages": 2, "num_residual": 1, "embed_dim": 8, "num_heads": 2,
                    "output_channels": 8}),
]
#: (event shape, levels, classes): binary grey, and RGB with 4 levels conditioned on 3 classes
DATA = [((1, 6, 5), 2, 0), ((3, 5, 4), 4, 3)]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def random_model(name: str, options: dict, shape: tuple[int, ...], levels: int, classes: int):
    """A randomly initialised model with weights large enough that every conditional differs."""
    torch.manual_seed(0)
    model = build_model(name, shape, levels, num_classes=classes, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def labels(n: int, classes: int) -> torch.Tensor | None:
    return torch.arange(n) % classes if classes else None


def step_params(model, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """Parameters ``(B, P, N)`` of every position, one cached step at a time, fed the values of ``x``."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    out = torch.zeros(x.shape[0], model.num_params_out, flat.shape[-1])
    cache, prev = model.init_cache(x.shape[0], cond), None
    with torch.no_grad():
        for pos in model.ordering().tolist():
            out[:, :, pos], cache = model.step(prev, cache)
            prev = flat[:, :, pos]
    return out


@pytest.mark.parametrize("shape,levels,classes", DATA)
@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_every_cached_conditional_equals_the_network(name, options, shape, levels, classes):
    """For any image (not only the model's own samples), step t gives the network's parameters at position t."""
    model = random_model(name, options, shape, levels, classes)
    assert model.supports_cache
    x = torch.randint(0, levels, (5, *shape), generator=torch.Generator().manual_seed(1))
    cond = labels(5, classes)
    masks = range(model.num_masks) if name == "made" else [None]
    for k in masks:
        if k is not None:
            model.use_mask(k)
        with torch.no_grad():
            full = model(x, cond).reshape(5, model.num_params_out, -1)
        torch.testing.assert_close(step_params(model, x, cond), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,levels,classes", DATA)
@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_cached_and_uncached_sampling_draw_the_same_images(name, options, shape, levels, classes):
    model = random_model(name, options, shape, levels, classes)
    cond = labels(12, classes)
    cached = model.sample(12, cond, use_cache=True, generator=torch.Generator().manual_seed(5))
    uncached = model.sample(12, cond, use_cache=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(cached, uncached)
    assert len({tuple(img.flatten().tolist()) for img in cached}) > 1, "the samples do not depend on the draws"


@pytest.mark.parametrize("name,options", CASES[::2], ids=IDS[::2])
def test_cached_completion_equals_uncached(name, options):
    """Completing the top half through the cache keeps the given pixels and draws what the full network draws."""
    model = random_model(name, {**options, "num_masks": 1} if name == "made" else options, (1, 6, 5), 2, 0)
    given = torch.randint(0, 2, (8, 1, 6, 5), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(8, 6, 5, dtype=torch.bool)
    known[:, :3] = True
    runs = [model.sample(8, x_given=given, known=known, use_cache=cached, generator=torch.Generator().manual_seed(4))
            for cached in (True, False)]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :, :3], given[:, :, :3])


@pytest.mark.parametrize("name,options", CASES[::2], ids=IDS[::2])
def test_a_step_past_the_last_position_is_an_error(name, options):
    model = random_model(name, options, (1, 2, 2), 2, 0)
    with pytest.raises(InputError, match="already generated"):
        model.prefill(torch.zeros(1, 1, 4, dtype=torch.long))


def test_conditional_pixelcnn_steps_read_the_conditioning_image():
    """With an image condition (and a class), every cached conditional equals the network's, the conditioning
    network's output being read at the right pixel, and cached sampling draws what uncached sampling draws."""
    name, options = CASES[9]
    model = random_model(name, options, (3, 5, 4), 4, 3)
    images = torch.rand(6, 3, 5, 4, generator=torch.Generator().manual_seed(8)) * 2 - 1
    cond = Condition(labels=labels(6, 3), image=images)
    x = torch.randint(0, 4, (6, 3, 5, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(x, cond).reshape(6, model.num_params_out, -1)
    torch.testing.assert_close(step_params(model, x, cond), full, rtol=1e-5, atol=1e-5)
    runs = [model.sample(6, cond, use_cache=cached, generator=torch.Generator().manual_seed(5))
            for cached in (True, False)]
    assert torch.equal(runs[0], runs[1])
