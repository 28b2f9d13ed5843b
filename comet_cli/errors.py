"""Typed errors. Library code raises these; the CLI prints them as one line (exit 1)."""
from __future__ import annotations


class CometError(Exception):
    """Base class: the message must say what failed and, where it helps, what to do."""

    exit_code = 1


class InputError(CometError):
    """A file, folder or argument given by the user cannot be used."""


class ModelError(CometError):
    """A model folder, checkpoint or architecture cannot be loaded or converted."""


class UnsupportedModelError(ModelError):
    """The architecture family has no row in the FAMILIES table."""


class StateError(CometError):
    """A memory-state file is missing, corrupt, from another model or a newer format."""


class RecipeError(CometError):
    """A fine-tuning recipe or one of its overrides is invalid."""


class DataError(CometError):
    """A data file for training or evaluation is missing or malformed."""


def fail(path, reason: str, cls: type[CometError] = InputError) -> CometError:
    """Build an error whose message names the file first: `PATH: reason`."""
    return cls(f"{path}: {reason}")
