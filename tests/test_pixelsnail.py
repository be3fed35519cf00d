"""PixelSNAIL: attention reaches the whole past, the class and the background matter, sampling is exact, and it
learns from the command line. Causality (RGB channel order included), normalisation and row cropping for every
registered model are in test_model_properties.py; its full context is in test_blind_spot.py."""

from __future__ import annotations

import pytest
import torch

from chainrule import api, cli
from chainrule.modalities.registry import build_model


def _tiny(shape, levels: int, head: str | None = None, classes: int = 0, **options):
    torch.manual_seed(0)
    model = build_model("pixelsnail", shape, levels, num_classes=classes, head=head, **{
        "channels": 8, "num_stages": 2, "num_residual": 1, "first_kernel_size": 3, "embed_dim": 8, "num_heads": 2,
        "output_channels": 8, **options}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def test_last_pixel_depends_on_the_first_beyond_any_kernel() -> None:
    """With 3x3 kernels and two stages the convolutions reach a few pixels; attention reaches pixel 0 from the last."""
    model = _tiny((1, 10, 10), 2)
    inputs = torch.randn(2, 1, 10, 10, requires_grad=True)
    (grad,) = torch.autograd.grad(model.network(inputs)[:, :, -1, -1].sum(), inputs)
    assert grad[:, :, 0, 0].abs().sum() > 0


def test_class_label_changes_the_conditionals() -> None:
    model = _tiny((1, 4, 4), 2, classes=3)
    x = torch.randint(0, 2, (4, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model.log_prob(x, torch.zeros(4, dtype=torch.long))
        b = model.log_prob(x, torch.full((4,), 2, dtype=torch.long))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(("shape", "levels", "head", "classes"), [
    ((3, 4, 3), 5, "logistic_mixture", 0),
    ((1, 4, 5), 4, "categorical", 3),
])
def test_cached_sampling_equals_full_network_sampling(shape, levels, head, classes) -> None:
    """Sampling through the convolution and key/value caches draws exactly what the full network would."""
    model = _tiny(shape, levels, head, classes)
    cond = torch.arange(4) % classes if classes else None
    a = model.sample(4, cond=cond, use_cache=True, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, cond=cond, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert model.supports_cache


#: the histogram (independent pixels) scores about 24.5 nats per binarized digit on the test split
LEARNED_NATS = 23.0


def test_cli_training_learns_digits(tmp_path) -> None:
    """A few dozen steps from ``chainrule train`` beat independent pixels on the held-out binarized digits."""
    run = tmp_path / "snail"
    settings = ["data.binarize=threshold", "train.steps=80", "train.lr=1e-2", "train.batch_size=64",
                "train.warmup_steps=5", "train.eval_every=0", "train.checkpoint_every=0", "train.progress=false",
                "output.samples=4", "model.channels=16", "model.num_stages=1", "model.num_residual=1",
                "model.embed_dim=16", "model.num_heads=2", "model.output_channels=16"]
    sets = [arg for s in settings for arg in ("--set", s)]
    assert cli.main(["train", "digits", "pixelsnail", "--run", str(run), *sets]) == 0
    result = api.evaluate(run)
    assert result["nll_nats"] < LEARNED_NATS, result
