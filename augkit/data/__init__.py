"""Data on top of the engine: offline expansion (and dataset wrappers)."""

from .expand import expand

__all__ = ["expand"]
