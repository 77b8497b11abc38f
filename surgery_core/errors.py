"""Errors that name the file and the problem, so a user can act on them."""

from __future__ import annotations

from pathlib import Path


class SurgeryError(Exception):
    """Base class for every error this library raises on purpose."""


class InputError(SurgeryError, ValueError):
    """THE error of user input: a file, an option or a setting the user gave is unusable. ``path`` says which
    file (None for a value), ``problem`` says why, in the user's terms. The CLI prints it as one line and exits 2
    and the app shows it as a message, whichever code path raises it; anything else escaping is a bug. (It is a
    ValueError too, for callers that catch bad values the standard way.)"""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class AnnotationError(InputError):
    """An annotation file cannot be read (malformed, hostile, missing fields, unknown class)."""


class ImageError(InputError):
    """An image cannot be decoded (corrupt, truncated, unsupported, too large)."""


class CheckpointError(InputError):
    """A checkpoint is not a usable state dict for the requested architecture."""


class PathNotAllowedError(InputError):
    """A path lies outside the configured data roots."""


class EmptyRunError(InputError):
    """A run would read no image: an empty split, or no image file where the images were looked for."""
