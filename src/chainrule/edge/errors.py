"""The edge runtime's one error type (kept apart from :mod:`chainrule.core.errors` so nothing pulls in torch)."""

from __future__ import annotations


class EdgeError(Exception):
    """A problem with the user's input (model file, option value); the CLI prints it as one line."""
