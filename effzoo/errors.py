"""Typed errors. Each also subclasses the standard exception a caller would catch."""

from __future__ import annotations


class EffzooError(Exception):
    """Base class of every error effzoo raises on purpose.

    ``reason``: where given, the cause in one clause, as data (a build log quotes it;
    the message itself is for people and may be reworded)."""

    def __init__(self, *args: object, reason: str | None = None) -> None:
        super().__init__(*args)
        self.reason = reason

    def __str__(self) -> str:  # KeyError quotes its message; keep ours readable
        return str(self.args[0]) if self.args else ""


class UnknownModelError(EffzooError, KeyError):
    """A model name that is neither a variant nor an alias."""


class InvalidArgumentError(EffzooError, ValueError):
    """An option with a value effzoo cannot build."""


class UnknownTagError(EffzooError, KeyError):
    """A weights tag that the catalogue does not list for the variant."""


class WeightsNotFoundError(EffzooError, FileNotFoundError):
    """Weights that are neither on disk, in a cache, nor reachable."""


class WeightsUnavailableError(EffzooError, ConnectionError):
    """The Hub could not be reached and nothing usable is cached."""


class CorruptWeightsError(EffzooError, ValueError):
    """A weights file that is truncated, unreadable or fails its checksum."""


class UnverifiedWeightsError(EffzooError, ValueError):
    """A cached file effzoo has no sha256 to check against (it never saw the Hub's answer
    for it); it is not loaded, and no other copy is loaded in its place."""


class WeightsMismatchError(EffzooError, ValueError):
    """A state dict whose keys or shapes do not fit the model."""


class ExportError(EffzooError, RuntimeError):
    """A model that cannot be exported or fused in its current state."""


class UltralyticsContractError(EffzooError, RuntimeError):
    """The installed Ultralytics lacks an internal that ``effzoo.yolo`` relies on."""


class DataNotFoundError(EffzooError, FileNotFoundError):
    """A data yaml (``effzoo compare --data``) that is missing or that Ultralytics cannot read."""
