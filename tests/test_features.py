"""``chainrule features`` / ``api.features``: vectorised per-example gradients equal autograd one example at a time,
the default parameters are the layer producing the head's parameters, Fisher scores are those gradients over the
root of the diagonal empirical Fisher of the training data, and hidden features are the output layer's input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_score import image_run, text_run
from torch import nn

from chainrule import api, cli
from chainrule.core.errors import ConfigError
from chainrule.features import (
    FISHER_EPS,
    output_layer,
    per_example_grads,
    per_example_grads_loop,
    selected_params,
    vectorisable,
)
from chainrule.modalities.image.codec import to_values
from chainrule.modalities.registry import build_model, model_class
from chainrule.runs import open_run

VECTORISED_IMAGE = ["pixelcnn", "gated_pixelcnn", "image_gpt", "pixel_lstm"]
VECTORISED_TEXT = ["transformer", "rnn_lm", "hybrid"]
DIGIT_LEVELS = 17  # the digits data set's 0..16 intensities


def tiny(name: str, modality: str, shape: tuple[int, ...], levels: int, num_classes: int = 0) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, shape, levels, num_classes=num_classes, modality=modality,
                        **model_class(name, modality).TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def cases() -> list[tuple[str, str, tuple[int, ...], int]]:
    return ([(n, "image", (1, 4, 4), 4) for n in VECTORISED_IMAGE]
            + [(n, "text", (1, 6), 9) for n in VECTORISED_TEXT])


@pytest.mark.parametrize("name,modality,shape,levels", cases())
def test_vectorised_gradients_equal_autograd_one_example_at_a_time(name, modality, shape, levels):
    model = tiny(name, modality, shape, levels)
    x = torch.randint(0, levels, (5, *shape), generator=torch.Generator().manual_seed(1))
    assert vectorisable(model)
    for prefix in (f"{output_layer(model, x)}.", ""):  # the output layer, then every parameter
        params = selected_params(model, prefix)
        fast = per_example_grads(model, params, x, None)
        slow = per_example_grads_loop(model, params, x, None)
        assert fast.shape == slow.shape == (5, sum(p.numel() for p in params.values()))
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(slow[0], slow[1])  # examples differ, so a mixed-up batch would show


def test_vectorised_gradients_of_a_class_conditional_model():
    model = tiny("pixelcnn", "image", (1, 4, 4), 4, num_classes=3)
    x = torch.randint(0, 4, (4, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 1])
    params = selected_params(model, "")
    torch.testing.assert_close(per_example_grads(model, params, x, labels),
                               per_example_grads_loop(model, params, x, labels), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,modality,shape,levels", cases())
def test_the_default_layer_produces_the_heads_parameters(name, modality, shape, levels):
    model = tiny(name, modality, shape, levels)
    x = torch.zeros(1, *shape, dtype=torch.long)
    module = model.get_submodule(output_layer(model, x))
    produced = module.out_features if isinstance(module, nn.Linear) else module.out_channels
    assert produced % model.num_params_out == 0 or model.num_params_out % produced == 0
    with torch.no_grad():  # moving it moves the head's parameters
        before = model(x).clone()
        module.weight.add_(1.0)
        assert not torch.allclose(model(x), before)


def test_an_unknown_prefix_names_the_layers():
    model = tiny("pixelcnn", "image", (1, 4, 4), 4)
    with pytest.raises(ConfigError, match="no parameter name starts with 'nope'"):
        selected_params(model, "nope")


# ------------------------------------------------------------------------------------------- from a run
def digits_run(tmp_path: Path, name: str = "pixelcnn") -> Path:
    return image_run(tmp_path / "run", name, levels=DIGIT_LEVELS, size=8, data={"name": "digits"})


def digit_pngs(folder: Path, count: int) -> torch.Tensor:
    folder.mkdir()
    lv = np.random.default_rng(0).integers(0, DIGIT_LEVELS, size=(count, 8, 8))
    for i, img in enumerate(lv):
        Image.fromarray(to_values(img, DIGIT_LEVELS), "L").save(folder / f"d{i}.png")
    return torch.from_numpy(lv)[:, None]


def test_fisher_scores_are_gradients_over_the_root_of_the_training_fisher(tmp_path):
    run = digits_run(tmp_path)
    x = digit_pngs(tmp_path / "in", 3)
    names, feats = api.features(run, tmp_path / "in", kind="fisher", fisher_examples=20)
    model = open_run(run).load_model("cpu").eval()
    params = selected_params(model, f"{output_layer(model, x)}.")
    train_x, _ = api.load_data({"name": "digits"})["train"].get(torch.arange(20))
    fisher = per_example_grads_loop(model, params, train_x, None).pow(2).mean(0)
    expected = per_example_grads_loop(model, params, x, None) / (fisher + FISHER_EPS).sqrt()
    assert names == ["d0.png", "d1.png", "d2.png"] and feats.dtype == np.float32
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_hidden_features_are_the_output_layers_input_mean_pooled(tmp_path):
    run = digits_run(tmp_path, "image_gpt")
    x = digit_pngs(tmp_path / "in", 3)
    _, feats = api.features(run, tmp_path / "in", kind="hidden")
    model = open_run(run).load_model("cpu").eval()
    layer = model.get_submodule(output_layer(model, x))
    seen = []
    hook = layer.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        model(x)
    hook.remove()
    pooled = seen[0].reshape(3, -1, seen[0].shape[-1]).mean(1)
    assert feats.shape == (3, layer.in_features)
    np.testing.assert_allclose(feats, pooled.numpy(), rtol=1e-5, atol=1e-5)


def test_cli_writes_the_feature_array(tmp_path, capsys):
    run = text_run(tmp_path / "run", "transformer")
    (tmp_path / "in.txt").write_text("hello\nworld again\n")
    out = tmp_path / "f.npy"
    assert cli.main(["features", str(run), str(tmp_path / "in.txt"), "--kind", "hidden", "--out", str(out)]) == 0
    assert np.load(out).shape == (2, 16) and "2 examples" in capsys.readouterr().out
