"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""

from __future__ import annotations


class ChainruleError(Exception):
    """A problem with the user's input (file, config value, name) rather than a bug in chainrule."""


class DataError(ChainruleError):
    """Unreadable, malformed or empty data; the message names the file and the problem."""


class ConfigError(ChainruleError):
    """An unknown name or an invalid configuration value."""


class CheckpointError(ChainruleError):
    """A missing, corrupt or incompatible checkpoint or run directory."""


class TrainingDiverged(ChainruleError):
    """The loss or a gradient became NaN/inf; the last good checkpoint is kept."""


class InputError(DataError, ValueError):
    """A value a model cannot take: a wrong shape, a level outside the head's support, a class out of range, a
    sampling option out of range. Also a ``ValueError``, as these checks raised before they were gathered."""


class RunLockedError(CheckpointError):
    """Another process is writing the run directory (training, resuming or importing into it)."""
