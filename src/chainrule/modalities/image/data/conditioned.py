"""Any image dataset as a super-resolution or colorization dataset: the conditioning image is derived on the fly
from each batch (:mod:`chainrule.modalities.image.conditioning`), so no derived copy is stored."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from chainrule.core.contract import Condition
from chainrule.modalities.image.conditioning import ImageTask


class ConditionedImages:
    """``get`` returns ``(x, Condition(image=...))``; class labels are dropped (the condition is the image)."""

    def __init__(self, base: Any, task: ImageTask) -> None:
        task.check(tuple(base.event_shape), f"dataset {base.name!r}")
        self.base, self.task = base, task
        self.num_classes, self.class_names = 0, []

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:  # event_shape, levels, set_epoch, name, split, ...
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def get(self, indices: Tensor) -> tuple[Tensor, Condition]:
        x, _ = self.base.get(indices)
        return x, Condition(image=self.task.condition(x, self.base.levels))

    def all(self) -> tuple[Tensor, Condition]:
        x, _ = self.base.all()
        return x, Condition(image=self.task.condition(x, self.base.levels))

    def spec(self) -> dict[str, Any]:
        return {"condition": self.task.spec()}

    def describe(self) -> str:
        return f"{self.task.describe()} of {self.base.describe()}"
