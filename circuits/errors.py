"""Kelvin's one exception family, shared by every layer (it lives in the lowest one)."""

from __future__ import annotations


class KelvinError(Exception):
    """Base of every error Kelvin raises on purpose; the CLI prints its message as one line."""


class ModelError(KelvinError):
    """The ONNX file or model is unreadable, invalid or inconsistent."""


class UnsupportedError(KelvinError):
    """A valid model uses a feature Kelvin does not implement (op, version, dtype, attribute)."""


class ParameterError(KelvinError, ValueError):
    """A primitive or option got a value outside its valid range."""


class InputError(KelvinError):
    """A user-supplied input (file, array, option) is missing or malformed."""


class OutputError(KelvinError):
    """An output file or directory cannot be written."""
