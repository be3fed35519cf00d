"""MAF (Papamakarios et al. 2017): a masked autoregressive flow built from MADE's masks.

Each layer is a MADE (the same degrees and :class:`MaskedLinear` as the ``made`` model) giving a shift ``mu_i`` and
log-scale ``a_i`` of dimension ``i`` from the dimensions before it; ``z_i = (y_i - mu_i) exp(-a_i)``. Density
evaluation is one pass (the Jacobian is triangular, ``log det = -sum a``); sampling inverts one dimension at a
time. The ordering reverses from layer to layer. An autoregressive model with a Gaussian conditional is a
one-layer MAF: this is where the two families meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.heads.base import Head
from chainrule.core.nn.masked import MaskedLinear
from chainrule.modalities.image.models.dequantized_flow import DequantizedFlow
from chainrule.modalities.image.models.made import made_degrees


class MADEAffine(nn.Module):
    """One MAF layer over ``D`` dimensions taken in ``order``: a masked MLP -> (mu, log-scale) per dimension."""

    def __init__(self, dims: int, hidden_sizes: Sequence[int], order: Tensor, seed: int) -> None:
        super().__init__()
        _, hidden_deg = made_degrees(dims, hidden_sizes, 1, seed, order_agnostic=False)
        in_deg = (torch.argsort(order) + 1)[None]  # (1, D): rank of each dimension in the ordering, from 1
        degrees = [in_deg, *hidden_deg]
        self.hidden = nn.ModuleList()
        for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True):
            layer = MaskedLinear(d_in.shape[1], d_out.shape[1])
            layer.set_masks(d_out[:, :, None] >= d_in[:, None, :])
            self.hidden.append(layer)
        self.out = MaskedLinear(degrees[-1].shape[1], 2 * dims)
        self.out.set_masks(in_deg.repeat(1, 2)[:, :, None] > degrees[-1][:, None, :])
        nn.init.zeros_(self.out.weight)  # identity at the start
        nn.init.zeros_(self.out.bias)
        self.register_buffer("order", order)

    def shift_log_scale(self, y: Tensor) -> tuple[Tensor, Tensor]:
        h = y
        for layer in self.hidden:
            h = torch.relu(layer(h))
        mu, a = self.out(h).chunk(2, dim=1)
        return mu, 3.0 * torch.tanh(a / 3.0)  # a bounded log-scale keeps the inverse stable

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        mu, a = self.shift_log_scale(y)
        return (y - mu) * torch.exp(-a), -a.sum(1)

    def inverse(self, z: Tensor) -> Tensor:
        """Dimension by dimension in the layer's ordering (dimension ``i`` needs the ones before it)."""
        y = torch.zeros_like(z)
        for i in self.order.tolist():
            mu, a = self.shift_log_scale(y)
            y[:, i] = z[:, i] * torch.exp(a[:, i]) + mu[:, i]
        return y


class MAF(DequantizedFlow):
    """Options: ``num_layers`` MADE layers (orderings alternate raster / reversed), ``hidden_sizes`` of each."""

    name: ClassVar[str] = "maf"
    TINY: ClassVar[dict] = {"num_layers": 2, "hidden_sizes": [8]}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, num_layers: int = 5,
                 hidden_sizes: Sequence[int] = (512,), mask_seed: int = 0) -> None:
        super().__init__(event_shape, head, num_classes)
        dims = self.num_dims
        raster = torch.arange(dims)
        self.layers = nn.ModuleList(
            MADEAffine(dims, [int(s) for s in hidden_sizes], raster if i % 2 == 0 else raster.flip(0), mask_seed + i)
            for i in range(int(num_layers)))

    def transform(self, y: Tensor) -> tuple[Tensor, Tensor]:
        z = y.flatten(1)
        log_det = torch.zeros(y.shape[0], device=y.device, dtype=y.dtype)
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld
        return z.reshape(y.shape), log_det

    def inverse(self, z: Tensor) -> Tensor:
        y = z.flatten(1)
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y.reshape(z.shape)
