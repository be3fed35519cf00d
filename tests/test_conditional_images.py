"""Super-resolution and colorization: the conditionals read the conditioning image and never a later pixel; the
conditions are derived from data as documented; ``chainrule upscale`` / ``colorize`` round trips on tiny runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from chainrule import api, cli
from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError, DataError, InputError
from chainrule.modalities.datasets import load_splits
from chainrule.modalities.image.conditioning import ImageTask, parse_task
from chainrule.modalities.registry import build_model

TINY = {"hidden_channels": 8, "num_layers": 2, "output_channels": 16, "condition_channels": 8,
        "condition_layers": 1}


def tiny(shape=(3, 4, 4), levels=4):
    torch.manual_seed(0)
    model = build_model("conditional_pixelcnn", shape, levels, **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def test_conditionals_read_the_image_and_no_later_pixel():
    """d params[pos] / d condition != 0 at every position; d params[pos] / d input[later or same pos] == 0, with the
    image given (the RGB channels inside a position belong to the head)."""
    model = tiny()
    inp = (torch.rand(2, 3, 4, 4) * 2 - 1).requires_grad_()
    image = (torch.rand(2, 3, 4, 4) * 2 - 1).requires_grad_()
    out = model.network(inp, Condition(image=image)).reshape(2, model.num_params_out, 16)
    for pos in range(16):
        g_in, g_img = torch.autograd.grad(out[:, :, pos].sum(), (inp, image), retain_graph=True)
        assert g_img.abs().sum() > 0, f"position {pos} ignores the conditioning image"
        reached = g_in.abs().sum(dim=(0, 1)).reshape(-1)
        assert (reached[pos:] == 0).all(), f"position {pos} reads pixel {int(reached[pos:].nonzero()[0]) + pos}"


def test_normalised_given_an_image():
    model = tiny((1, 2, 2), 3)
    xs = torch.tensor(np.indices((3,) * 4).reshape(4, -1).T).reshape(-1, 1, 2, 2)
    image = torch.rand(1, 1, 2, 2).expand(len(xs), 1, 2, 2) * 2 - 1
    with torch.no_grad():
        total = model.log_prob(xs, Condition(image=image)).double().exp().sum().item()
    assert abs(total - 1) < 1e-5


def test_row_cropped_sampling_equals_full_network_with_an_image():
    model = tiny((3, 5, 4), 4)
    cond = Condition(image=torch.rand(6, 3, 5, 4) * 2 - 1)
    a = model.sample(6, cond, use_cache=True, generator=torch.Generator().manual_seed(3))
    b = model.sample(6, cond, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_condition_images_are_checked_once_at_the_contract():
    model, plain = tiny(), build_model("gated_pixelcnn", (3, 4, 4), 4, hidden_channels=4, num_layers=1)
    x = torch.zeros(2, 3, 4, 4, dtype=torch.long)
    with pytest.raises(InputError, match="takes no conditioning image"):
        plain.log_prob(x, Condition(image=torch.zeros(2, 3, 4, 4)))
    with pytest.raises(InputError, match="shape"):
        model.log_prob(x, Condition(image=torch.zeros(2, 1, 4, 4)))
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        model.sample(2, Condition(image=torch.full((2, 3, 4, 4), 2.0)))


def test_conditions_derived_from_levels():
    x = torch.randint(0, 5, (3, 3, 4, 8))
    low = ImageTask("upscale", 4).condition(x, 5)
    blocks = (x.float() / 4).reshape(3, 3, 1, 4, 2, 4).mean(dim=(3, 5)) * 2 - 1
    torch.testing.assert_close(low, blocks.repeat_interleave(4, 2).repeat_interleave(4, 3))
    grey = ImageTask("colorize").condition(x, 5)
    luma = (x.float() / 4 * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1) * 2 - 1
    torch.testing.assert_close(grey, luma[:, None].expand_as(grey))


def test_dataset_specs():
    assert parse_task("upscale:photos") == (ImageTask("upscale", 2), "photos")
    assert parse_task("upscale4:mnist-subset") == (ImageTask("upscale", 4), "mnist-subset")
    assert parse_task("imagefolder:some/where") is None
    for bad in ("upscale3:digits", "colorize:"):
        with pytest.raises(ConfigError):
            parse_task(bad)
    with pytest.raises(DataError, match="RGB"):
        load_splits("colorize:digits")
    splits = load_splits("upscale:digits")
    x, cond = splits["test"].get(torch.arange(5))
    assert splits["train"].num_classes == 0 and cond.labels is None
    torch.testing.assert_close(cond.image, ImageTask("upscale", 2).condition(x, 17))


def _pictures(folder, n: int, size: int, rgb: bool) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        shape = (size, size, 3) if rgb else (size, size)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i}.png")


def tiles(png, side: int) -> int:
    """Tiles in a one-row grid of ``side``-pixel images (1-pixel borders, scaled up)."""
    width, height = Image.open(png).size
    scale = height // (side + 2)
    return (width // scale - 1) // (side + 1)


def _train(tmp_path, data: str, name: str):
    return api.train(data, "conditional_pixelcnn", overrides=[
        "train.steps=2", "train.batch_size=4", "output.samples=2", "data.levels=4",
        *[f"model.{k}={v}" for k, v in TINY.items()]], run_dir=tmp_path / name).path


def test_cli_round_trips(tmp_path, capsys):
    """An RGB image folder trains a colorizer and an upscaler; each command writes input, samples and original."""
    _pictures(tmp_path / "rgb", 10, 4, rgb=True)
    colour = _train(tmp_path, f"colorize:{tmp_path / 'rgb'}", "colour")
    upscale = _train(tmp_path, f"upscale:{tmp_path / 'rgb'}", "up")
    out = tmp_path / "c.png"
    assert cli.main(["colorize", str(colour), str(tmp_path / "rgb" / "0.png"), "--samples", "3",
                     "--out", str(out)]) == 0
    assert "original" in capsys.readouterr().out
    assert tiles(out, 4) == 5  # input, 3 samples, original
    _pictures(tmp_path / "small", 1, 2, rgb=True)
    assert cli.main(["upscale", str(upscale), str(tmp_path / "small" / "0.png"), "--samples", "2",
                     "--out", str(out)]) == 0
    assert "original" not in capsys.readouterr().out
    assert tiles(out, 4) == 3  # input, 2 samples
    assert cli.main(["colorize", str(upscale), str(tmp_path / "small" / "0.png")]) == 1
    assert "trained to upscale x2" in capsys.readouterr().err
