"""The kind of a run: which modality its ``spec`` describes, and so which commands can use it."""

from __future__ import annotations

from enum import Enum
from typing import Any

from chainrule.core.errors import CheckpointError


class RunKind(str, Enum):
    """Stored in ``config.yaml`` as ``spec.kind`` by its value (runs written before the enum existed load too)."""

    IMAGE = "image"
    TEXT = "text"
    SERIES = "timeseries"
    AUDIO = "audio"
    MUSIC = "music"  # token sequences of scores: the text language models on a music vocabulary
    TTS = "tts"  # text-to-mel models (modalities/audio/models/tacotron.py), trained and used by chainrule.tts

    def __str__(self) -> str:
        return self.value

    @property
    def modality(self) -> str:
        """The model registry's modality for this kind of run."""
        return {RunKind.SERIES: "series", RunKind.MUSIC: "text"}.get(self, self.value)


def run_kind(spec: Any, where: str = "run") -> RunKind:
    """The kind recorded in a run's spec (``image`` when absent, as in the earliest runs)."""
    value = spec.get("kind", RunKind.IMAGE.value) if isinstance(spec, dict) else None
    try:
        return RunKind(value)
    except ValueError:
        raise CheckpointError(f"{where}: unknown run kind {value!r}; known kinds: "
                              f"{', '.join(k.value for k in RunKind)}") from None
