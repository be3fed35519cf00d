"""VAE and flow samplers exported to ONNX: the graph reproduces PyTorch for the same noise, the torch-free edge
runtime draws the image PyTorch draws, a run goes from `chainrule export` to a PNG, and the families whose sampler is
not one pass from noise are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from chainrule import api, cli
from chainrule.core.errors import ConfigError
from chainrule.edge import EdgeModel
from chainrule.edge.__main__ import main as edge_main
from chainrule.edge.families import images_from_noise
from chainrule.export.onnx import export_model
from chainrule.export.plan import plan_export
from chainrule.modalities.registry import build_model, model_class

#: (model, event shape, levels, options)
CASES = {
    "vae-binary": ("vae", (1, 5, 6), 2, {"latent": 3, "hidden": 4}),
    "vae-grey": ("vae", (1, 4, 4), 5, {"latent": 2, "hidden": 4}),
    "realnvp": ("realnvp", (2, 4, 6), 4, {"num_layers": 3, "hidden": 4}),
}


def tiny(key: str) -> torch.nn.Module:
    name, shape, levels, options = CASES[key]
    torch.manual_seed(0)
    model = build_model(name, shape, levels, **options)
    with torch.no_grad():  # away from the flows' identity start, so the inverse does something
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """key -> (model, EdgeModel of its exported sampler)."""
    out = {}
    for key in CASES:
        model = tiny(key)
        path = tmp_path_factory.mktemp(key) / "sampler.onnx"
        meta = export_model(model, path)
        assert meta["graph"] == "sampler"
        out[key] = model, EdgeModel(path, threads=1)
    return out


@pytest.mark.parametrize("key", list(CASES))
def test_exported_graph_equals_the_pytorch_sampler(exported, key):
    """decoder(z) (VAE) or the inverse flow (RealNVP) from ONNX matches PyTorch for the same normal noise."""
    model, edge = exported[key]
    z = torch.randn(7, *edge.metadata["noise_shape"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.decode(z) if model.family == "vae" else model.from_logit(model.inverse(z))
    got = edge.run({"z": z.numpy()})[0]
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("key", "temperature"), [("vae-binary", 1.0), ("vae-binary", 0.5), ("realnvp", 1.0),
                                                  ("realnvp", 0.7)])
def test_edge_draws_the_image_pytorch_draws(exported, key, temperature):
    """For the noise model.sample draws from a seeded generator, the edge runtime makes the same levels."""
    model, edge = exported[key]
    n = 32
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(n, *edge.metadata["noise_shape"], generator=gen)
    u = torch.rand(n, *model.event_shape, generator=gen) if model.family == "vae" else None
    expected = model.sample(n, temperature=temperature, generator=torch.Generator().manual_seed(3))
    got = images_from_noise(edge, z.numpy(), None if u is None else u.numpy(), temperature)
    assert got.dtype == np.int64 and 0 < got.mean() and got.max() < model.head.levels
    np.testing.assert_array_equal(got, expected.numpy())


def test_categorical_decoder_draws_follow_the_softmax(exported):
    """Many uniform draws for one z: each pixel's level frequencies match softmax(logits / T) of PyTorch."""
    model, edge = exported["vae-grey"]
    n, temperature = 20000, 0.8
    z = torch.randn(1, model.latent, generator=torch.Generator().manual_seed(2)).expand(n, -1)
    u = np.random.default_rng(0).random((n, *model.event_shape))
    levels = images_from_noise(edge, z.numpy(), u, temperature)  # (n, 1, 4, 4)
    with torch.no_grad():
        probs = torch.softmax(model.decode(z[:1]).reshape(1, 5, 4, 4) / temperature, dim=1)[0].numpy()  # (K, 4, 4)
    freqs = np.stack([(levels[:, 0] == k).mean(0) for k in range(5)])
    assert np.abs(freqs - probs).max() < 0.02, np.abs(freqs - probs).max()


def test_a_run_exports_and_the_edge_cli_writes_a_png(tmp_path, capsys):
    """`chainrule export` of a trained digits VAE, then `chainrule-edge sample` -> a PNG grid of the samples."""
    run = tmp_path / "vae"
    api.train("digits", "vae", overrides=["train.steps=2", "train.batch_size=16", "train.progress=false",
                                          "data.binarize=threshold", "output.samples=0",
                                          *[f"model.{k}={v}" for k, v in model_class("vae", "image").TINY.items()]],
              run_dir=run)
    onnx_path, png = tmp_path / "vae.onnx", tmp_path / "samples.png"
    assert cli.main(["export", str(run), "--out", str(onnx_path)]) == 0
    assert "sampler" in capsys.readouterr().out
    assert edge_main(["sample", str(onnx_path), "-n", "6", "--out", str(png), "--seed", "4"]) == 0
    img = np.asarray(Image.open(png))
    assert img.shape == (2 * 9 - 1, 3 * 9 - 1) and set(np.unique(img)) <= {0, 255}
    assert edge_main(["sample", str(onnx_path), "-n", "2", "--class", "1", "--out", str(png)]) == 1
    assert "not class-conditional" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "modality", "reason"), [
    ("maf", "image", "sequential over the dimensions"),
    ("pixel_vae", "image", "decoder is autoregressive"),
    ("ddpm", "image", "the diffusion sampler of this image model is not exported yet"),
    ("gan", "image", "the gan sampler of this image model is not exported yet"),
    ("sequence_vae", "text", "the vae sampler of this text model is not exported yet"),
])
def test_other_samplers_are_refused_in_one_line(name, modality, reason):
    shape = (1, 4, 4) if modality == "image" else (1, 8)
    model = build_model(name, shape, 2 if modality == "image" else 6, **model_class(name, modality).TINY).eval()
    with pytest.raises(ConfigError, match=f"'{name}' cannot be exported: .*{reason}") as info:
        plan_export(model)
    assert "\n" not in str(info.value)
