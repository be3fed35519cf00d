"""Receptive fields: the Gated PixelCNN, the Diagonal BiLSTM and PixelSNAIL see every earlier pixel; the plain
PixelCNN has a blind spot."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads import Bernoulli
from chainrule.modalities.image.models.diagonal_bilstm import DiagonalBiLSTM
from chainrule.modalities.image.models.gated_pixelcnn import GatedPixelCNN
from chainrule.modalities.image.models.pixelcnn import PixelCNN
from chainrule.modalities.image.models.pixelsnail import PixelSNAIL

SIZE = 9


def _randomise(model: nn.Module, seed: int = 0) -> None:
    """Fresh random weights *and* biases (float64), so no gradient is zero by accident."""
    gen = torch.Generator().manual_seed(seed)
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 10
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(fan_in))


def _grad_map(model: AutoregressiveModel, row: int, col: int) -> Tensor:
    """|d params(row, col) / d input| summed over batch and channels: an (H, W) map."""
    inputs = torch.randn(4, 1, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inputs.requires_grad_(True)
    out = model.network(inputs)
    (grad,) = torch.autograd.grad(out[:, :, row, col].sum(), inputs)
    return grad.abs().sum((0, 1))


def _earlier(row: int, col: int) -> Tensor:
    """Bool (H, W) map of the pixels strictly before (row, col) in raster order."""
    flat = torch.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    return flat < row * SIZE + col


def test_gated_pixelcnn_has_no_blind_spot() -> None:
    model = GatedPixelCNN((1, SIZE, SIZE), Bernoulli(), hidden_channels=8, num_layers=6, output_channels=8)
    _randomise(model)
    for row in range(SIZE):
        for col in range(SIZE):
            grad = _grad_map(model, row, col)
            before = _earlier(row, col)
            assert (grad[before] > 0).all(), f"pixel ({row},{col}) misses earlier pixels:\n{grad}"
            assert (grad[~before] == 0).all(), f"pixel ({row},{col}) sees itself or later pixels:\n{grad}"


def test_gated_pixelcnn_centre_sees_far_right_of_rows_above() -> None:
    model = GatedPixelCNN((1, SIZE, SIZE), Bernoulli(), hidden_channels=8, num_layers=4, output_channels=8)
    _randomise(model, seed=3)
    c = SIZE // 2
    grad = _grad_map(model, c, c)
    assert (grad[:c, :] > 0).all()  # every column of every row above, incl. the far right
    assert (grad[c, :c] > 0).all()  # the left part of the current row
    assert (grad[c, c:] == 0).all() and (grad[c + 1 :, :] == 0).all()


def test_pixelcnn_has_blind_spot() -> None:
    blocks = 3
    model = PixelCNN((1, SIZE, SIZE), Bernoulli(), hidden_channels=8, num_blocks=blocks, output_channels=8)
    _randomise(model)
    c = SIZE // 2
    grad = _grad_map(model, c, c)
    before = _earlier(c, c)
    assert (grad[~before] == 0).all()  # still autoregressive
    # nominal (unmasked) receptive field: radius 3 (7x7) + 1 per 3x3 block, which covers the whole 9x9 image
    assert 3 + blocks >= SIZE - 1 - c
    assert grad[c - 1, c + 3] > 0  # the 7x7 mask-A kernel reaches 3 columns right in the row above ...
    assert grad[c - 1, c + 4] == 0  # ... but nothing further: the blind spot
    blind = before & (grad == 0)
    assert blind[:c, c + 1 :].any()


def _assert_sees_exactly_the_earlier_pixels(model: AutoregressiveModel, size: int) -> None:
    """Every pixel's params depend on every earlier pixel and on nothing else (one forward pass, one backward per
    pixel)."""
    inputs = torch.randn(4, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inputs.requires_grad_(True)
    out = model.network(inputs)
    flat = torch.arange(size * size).reshape(size, size)
    for row in range(size):
        for col in range(size):
            (grad,) = torch.autograd.grad(out[:, :, row, col].sum(), inputs, retain_graph=True)
            grad = grad.abs().sum((0, 1))
            before = flat < row * size + col
            assert (grad[before] > 0).all(), f"pixel ({row},{col}) misses earlier pixels:\n{grad}"
            assert (grad[~before] == 0).all(), f"pixel ({row},{col}) sees itself or later pixels:\n{grad}"


def test_diagonal_bilstm_has_no_blind_spot() -> None:
    """One Diagonal BiLSTM layer already sees every earlier pixel, the last pixel of the row above included (which
    a 3x3 mask-A kernel at the start of a row does not reach)."""
    size = 6
    model = DiagonalBiLSTM((1, size, size), Bernoulli(), channels=8, hidden_size=4, num_layers=1,
                           first_kernel_size=3, output_channels=8)
    _randomise(model)
    _assert_sees_exactly_the_earlier_pixels(model, size)


def test_pixelsnail_has_no_blind_spot() -> None:
    """Causal attention over raster order reaches every earlier pixel, however small the convolutions."""
    size = 6
    model = PixelSNAIL((1, size, size), Bernoulli(), channels=8, num_stages=1, num_residual=1, first_kernel_size=3,
                       embed_dim=8, num_heads=2, output_channels=8)
    _randomise(model)
    _assert_sees_exactly_the_earlier_pixels(model, size)
