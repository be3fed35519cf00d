"""The audio libraries (the ``audio`` extra), imported when first needed so chainrule runs without them."""

from __future__ import annotations

import importlib
from types import ModuleType

from chainrule.core.errors import ConfigError


def audio_library(name: str) -> ModuleType:
    """``librosa`` or ``soundfile``; a one-line error naming the extra when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"audio needs {name}: pip install 'chainrule[audio]'") from None
