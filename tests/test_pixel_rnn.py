"""PixelRNN (Row LSTM, Diagonal BiLSTM): receptive fields, the skew, the Row LSTM's row cache, and learning from
the command line. Causality, normalisation and row cropping for every registered model are in
test_model_properties.py; the Diagonal BiLSTM's full context is in test_blind_spot.py."""

from __future__ import annotations

import math

import pytest
import torch

from chainrule import api, cli
from chainrule.core.heads import Bernoulli
from chainrule.modalities.image.models.diagonal_bilstm import skew, unskew
from chainrule.modalities.image.models.row_lstm import RowLSTM
from chainrule.modalities.registry import build_model


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Fresh float64 weights and biases, so no gradient vanishes by accident."""
    gen = torch.Generator().manual_seed(seed)
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(p[0].numel() if p.ndim > 1 else 10))


def test_row_lstm_receptive_field_is_the_triangle_above() -> None:
    """Pixel (i, j) sees row r < i up to column j + 2 + (i - r) (7x7 mask A, k = 3: the paper's triangle, which
    misses the far right of the rows just above) and the current row left of j; nothing else."""
    rows, width, (i, j) = 8, 14, (7, 5)
    model = RowLSTM((1, rows, width), Bernoulli(), channels=8, hidden_size=4, num_layers=3, output_channels=8)
    _randomise(model)
    inputs = torch.randn(2, 1, rows, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inputs.requires_grad_(True)
    (grad,) = torch.autograd.grad(model.network(inputs)[:, :, i, j].sum(), inputs)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(width), indexing="ij")
    triangle = ((r < i) & (c <= j + 2 + (i - r))) | ((r == i) & (c < j))
    assert torch.equal(grad.abs().sum((0, 1)) > 0, triangle), grad.abs().sum((0, 1))


def test_skew_moves_row_i_right_by_i_and_unskew_inverts_it() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    s = skew(x)
    assert s.shape == (2, 3, 4, 5 + 4 - 1)
    for i in range(4):
        assert torch.equal(s[:, :, i, i:i + 5], x[:, :, i])
        assert not s[:, :, i, :i].any() and not s[:, :, i, i + 5:].any()
    assert torch.equal(unskew(s, 5), x)


@pytest.mark.parametrize(("shape", "levels", "head", "classes"), [
    ((1, 5, 6), 2, None, 0),
    ((3, 4, 3), 5, "logistic_mixture", 0),
    ((3, 3, 4), 4, "categorical", 3),
])
def test_row_lstm_cached_sampling_equals_uncached(shape, levels, head, classes) -> None:
    """The row cache gives the teacher-forced conditionals (within 1e-5) and identical samples under one seed."""
    torch.manual_seed(0)
    model = build_model("row_lstm", shape, levels, num_classes=classes, head=head, channels=8, hidden_size=6,
                        num_layers=2, kernel_size=5, output_channels=8).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    n = 5
    cond = torch.arange(n) % classes if classes else None
    a = model.sample(n, cond=cond, use_cache=True, generator=torch.Generator().manual_seed(3))
    b = model.sample(n, cond=cond, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with torch.no_grad():
        full = model(a, cond).reshape(n, model.num_params_out, -1)
        cache, prev = model.init_cache(n, cond), None
        for pos in range(model.num_positions):
            params, cache = model.step(prev, cache)
            torch.testing.assert_close(params, full[:, :, pos], rtol=0, atol=1e-5)
            prev = a.reshape(n, shape[0], -1)[:, :, pos]
        with pytest.raises(ValueError, match="already generated"):
            model.step(prev, cache)


#: the histogram (independent pixels) scores about 24.5 nats per binarized digit on the test split
LEARNED_NATS = 23.0


@pytest.mark.parametrize(("name", "options"), [
    ("row_lstm", ["model.channels=16", "model.hidden_size=8", "model.num_layers=1", "model.output_channels=16"]),
    ("diagonal_bilstm", ["model.channels=16", "model.hidden_size=8", "model.num_layers=1",
                         "model.output_channels=16"]),
])
def test_cli_training_learns_digits(name, options, tmp_path) -> None:
    """A few dozen steps from ``chainrule train`` beat independent pixels on the held-out binarized digits."""
    run = tmp_path / name
    settings = ["data.binarize=threshold", "train.steps=80", "train.lr=1e-2", "train.batch_size=64",
                "train.warmup_steps=5", "train.eval_every=0", "train.checkpoint_every=0", "train.progress=false",
                "output.samples=4", *options]
    assert cli.main(["train", "digits", name, "--run", str(run), *sum((["--set", s] for s in settings), [])]) == 0
    result = api.evaluate(run)
    assert result["nll_nats"] < LEARNED_NATS, result
