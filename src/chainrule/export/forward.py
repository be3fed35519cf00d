"""The teacher-forced forward pass as an exportable module: integer levels (and class labels) -> params."""

from __future__ import annotations

from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel


class ForwardPass(nn.Module):
    """``x`` (B, C, *S) int64 levels -> head parameters (B, P, *S): ``network(encode(x))``.

    Class-conditional models take a second input, ``cond`` (B,) int64.
    """

    def __init__(self, model: AutoregressiveModel) -> None:
        super().__init__()
        self.model = model
        self.conditional = model.num_classes > 0

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.model.network(self.model.encode(x), cond)
