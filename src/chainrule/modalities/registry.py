"""Model registry: adding an architecture means one new file plus one line here."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.heads import build_head

#: name -> "module:Class" (imported lazily so listing models is cheap)
MODELS: dict[str, str] = {
    "histogram": "chainrule.modalities.image.models.histogram:Histogram",
    "pixel_lstm": "chainrule.modalities.image.models.pixel_lstm:PixelLSTM",
    "made": "chainrule.modalities.image.models.made:MADE",
    "pixelcnn": "chainrule.modalities.image.models.pixelcnn:PixelCNN",
    "gated_pixelcnn": "chainrule.modalities.image.models.gated_pixelcnn:GatedPixelCNN",
    "pixelcnn_pp": "chainrule.modalities.image.models.pixelcnn_pp:PixelCNNPP",
    "rnn_lm": "chainrule.modalities.text.models.rnn_lm:RNNLM",
    "transformer": "chainrule.modalities.text.models.transformer:Transformer",
    "hybrid": "chainrule.modalities.text.models.hybrid:HybridLM",
}


def model_class(name: str) -> type[AutoregressiveModel]:
    key = name.replace("-", "_").lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def build_model(
    name: str,
    event_shape: Sequence[int],
    levels: int,
    num_classes: int = 0,
    head: str | None = None,
    head_options: dict[str, Any] | None = None,
    **options: Any,
) -> AutoregressiveModel:
    """Build a registered model for data of ``event_shape`` (C, *S) with ``levels`` values per channel.

    ``head`` defaults to the architecture's ``default_head`` (``auto``: Bernoulli for binary data,
    Categorical otherwise). Unknown options raise :class:`ConfigError` naming the option.
    """
    cls = model_class(name)
    head_name = head or getattr(cls, "default_head", "auto")
    head_mod = build_head(head_name, levels, **(head_options or {}))
    try:
        model = cls(event_shape=event_shape, head=head_mod, num_classes=num_classes, **options)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"model {cls.name!r} with options {options}: {e}") from None
    model._config = dict(options)
    return model
