"""The masked convolution computes with the kernel rows that can be non-zero only: the same function as the
full masked kernel; and PixelCNN, which computes in channels-last maps, still returns contiguous parameters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chainrule.core.nn.masked import MaskedConv2d
from chainrule.modalities.registry import build_model, model_class


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_cropped_kernel_equals_the_full_masked_kernel(mask_type: str, kernel_size: int) -> None:
    if mask_type == "A" and kernel_size == 1:
        pytest.skip("a 1x1 mask-A kernel is all zeros")
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, kernel_size, mask_type)
    x = torch.randn(2, 3, 6, 5)
    full = F.conv2d(x, conv.weight * conv.mask, conv.bias, padding=kernel_size // 2)
    torch.testing.assert_close(conv(x), full, atol=1e-5, rtol=1e-5)


def test_channels_last_pixelcnn_returns_contiguous_parameters() -> None:
    torch.manual_seed(0)
    model = build_model("pixelcnn", (3, 4, 4), 4, **model_class("pixelcnn", "image").TINY)
    x = torch.randint(0, 4, (2, 3, 4, 4))
    params = model(x)
    assert params.is_contiguous()
