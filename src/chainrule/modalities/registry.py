"""The one model registry, keyed by modality and name: adding a model is one new file plus one line here.

A name may exist in several modalities (``transformer`` is a language model and a forecaster); callers that
know the modality (a run's kind, the data) pass it, and a bare name works wherever it is unique.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError

#: (modality, name) -> "module:Class" (imported lazily so listing models is cheap)
MODELS: dict[tuple[str, str], str] = {
    ("image", "histogram"): "chainrule.modalities.image.models.histogram:Histogram",
    ("image", "pixel_lstm"): "chainrule.modalities.image.models.pixel_lstm:PixelLSTM",
    ("image", "made"): "chainrule.modalities.image.models.made:MADE",
    ("image", "pixelcnn"): "chainrule.modalities.image.models.pixelcnn:PixelCNN",
    ("image", "gated_pixelcnn"): "chainrule.modalities.image.models.gated_pixelcnn:GatedPixelCNN",
    ("image", "pixelcnn_pp"): "chainrule.modalities.image.models.pixelcnn_pp:PixelCNNPP",
    ("image", "image_gpt"): "chainrule.modalities.image.models.image_gpt:ImageGPT",
    ("image", "row_lstm"): "chainrule.modalities.image.models.row_lstm:RowLSTM",
    ("image", "diagonal_bilstm"): "chainrule.modalities.image.models.diagonal_bilstm:DiagonalBiLSTM",
    ("image", "pixelsnail"): "chainrule.modalities.image.models.pixelsnail:PixelSNAIL",
    ("image", "conditional_pixelcnn"): "chainrule.modalities.image.models.conditional_pixelcnn:ConditionalPixelCNN",
    ("image", "vae"): "chainrule.modalities.image.models.vae:VAE",
    ("image", "pixel_vae"): "chainrule.modalities.image.models.pixel_vae:PixelVAE",
    ("image", "realnvp"): "chainrule.modalities.image.models.realnvp:RealNVP",
    ("image", "maf"): "chainrule.modalities.image.models.maf:MAF",
    ("image", "ddpm"): "chainrule.modalities.image.models.ddpm:DDPM",
    ("image", "gan"): "chainrule.modalities.image.models.gan:GAN",
    ("text", "rnn_lm"): "chainrule.modalities.text.models.rnn_lm:RNNLM",
    ("text", "transformer"): "chainrule.modalities.text.models.transformer:Transformer",
    ("text", "hybrid"): "chainrule.modalities.text.models.hybrid:HybridLM",
    ("text", "sequence_vae"): "chainrule.modalities.text.models.sequence_vae:TokenSequenceVAE",
    ("audio", "wavenet"): "chainrule.modalities.audio.models.wavenet:WaveNet",
    ("series", "lstm"): "chainrule.modalities.series.models.lstm:LSTMForecaster",
    ("series", "deepar"): "chainrule.modalities.series.models.deepar:DeepAR",
    ("series", "transformer"): "chainrule.modalities.series.models.transformer:TransformerForecaster",
    ("series", "sequence_vae"): "chainrule.modalities.series.models.sequence_vae:SeriesSequenceVAE",
}

MODALITIES = tuple(dict.fromkeys(m for m, _ in MODELS))


def model_names(modality: str | None = None) -> list[str]:
    """Registered names, in registry order, of one modality (or all, each once)."""
    return list(dict.fromkeys(n for m, n in MODELS if modality is None or m == modality))


def model_key(name: str, modality: str | None = None) -> tuple[str, str]:
    """The registry key of ``name``; :class:`ConfigError` when unknown, or when ambiguous without ``modality``."""
    key = str(name).replace("-", "_").lower()
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; modalities: {', '.join(MODALITIES)}")
    found = [k for k in MODELS if k[1] == key and (modality is None or k[0] == modality)]
    if not found:
        where = f" for {modality} data" if modality else ""
        raise ConfigError(f"unknown model {name!r}{where}; available: {', '.join(model_names(modality))}")
    if len(found) > 1:
        raise ConfigError(f"model {name!r} exists for {' and '.join(m for m, _ in found)} data; say which")
    return found[0]


def _discrete_modality(name: str, levels: int) -> str | None:
    """For data with discrete ``levels`` the name cannot mean a forecaster: resolve the modality among the rest."""
    if not levels:
        return None
    key = str(name).replace("-", "_").lower()
    found = [m for m, n in MODELS if n == key and m != "series"]
    return found[0] if len(found) == 1 else None


def model_class(name: str, modality: str | None = None) -> type[AutoregressiveModel]:
    module, cls = MODELS[model_key(name, modality)].split(":")
    return getattr(importlib.import_module(module), cls)


def build_model(
    name: str,
    event_shape: Sequence[int] | None = None,
    levels: int = 0,
    num_classes: int = 0,
    head: str | None = None,
    head_options: dict[str, Any] | None = None,
    modality: str | None = None,
    **options: Any,
) -> AutoregressiveModel:
    """Build a registered model for data of ``event_shape`` (C, *S) with ``levels`` values per channel (image,
    text) or for a series (``lags``, ``num_time_features`` among the options).

    ``head`` defaults to the architecture's ``default_head`` (``auto``: Bernoulli for binary data, Categorical
    otherwise). Unknown options raise :class:`ConfigError` naming the option.
    """
    cls = model_class(name, modality or _discrete_modality(name, levels))
    try:
        model = cls.build(event_shape=event_shape, levels=levels, num_classes=num_classes, head=head,
                          head_options=head_options, **options)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"model {cls.name!r} with options {options}: {e}") from None
    model._config = dict(options)
    return model
