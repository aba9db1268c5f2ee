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
    """Raised by earlier effzoo releases for a cached file it had no sha256 to check against. Such a
    copy now loads, checked as far as it can be without the Hub and said so at WARNING
    (docs/weights.md); the class stays so that code catching it keeps working."""


class WeightsMismatchError(EffzooError, ValueError):
    """A state dict whose keys or shapes do not fit the model."""


class ExportError(EffzooError, RuntimeError):
    """A model that cannot be exported or fused in its current state."""


class UltralyticsContractError(EffzooError, RuntimeError):
    """The installed Ultralytics lacks an internal that ``effzoo.yolo`` relies on."""


class CheckpointFormatError(EffzooError, ValueError):
    """A checkpoint whose effzoo layers this effzoo cannot rebuild: written by a newer
    effzoo (a format it does not know), or needing a timm it cannot build with. The
    message names the versions that wrote it."""


class IncompatibleTimmError(EffzooError, ImportError):
    """The installed timm lacks an internal effzoo builds with (a renamed private module).
    An ImportError, not a ModuleNotFoundError: Ultralytics' checkpoint loader answers the
    latter by trying to pip install the missing module's name."""


class DatasetUnavailableError(EffzooError, ConnectionError):
    """A dataset that is not on disk and could not be downloaded (``effzoo yolo``)."""
