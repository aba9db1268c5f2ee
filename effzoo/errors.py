"""Typed errors. Each also subclasses the standard exception a caller would catch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._redact import redact


class EffzooError(Exception):
    """Base class of every error effzoo raises on purpose.

    ``reason``: where given, the cause in one clause, as data (a build log quotes it;
    the message itself is for people and may be reworded).

    Credentials in the message or reason (a URL's user info, a token, a signed query
    string) are masked when the error is made (``effzoo._redact``)."""

    def __init__(self, *args: object, reason: str | None = None) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))
        self.reason = redact(reason) if reason is not None else None

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


class TamperedWeightsError(CorruptWeightsError):
    """The Hub announcing other bytes for a file of a commit than those effzoo verified
    for that commit before: a commit is immutable, so the new bytes are refused."""


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


@contextmanager
def timm_internals() -> Iterator[None]:
    """Around an import of timm's EfficientNet internals (semi-private modules such as
    ``timm.models._efficientnet_blocks``): a timm that moved or renamed one raises one
    ``IncompatibleTimmError`` naming the supported range, where the internal is first
    needed, instead of a raw ``ModuleNotFoundError`` (which Ultralytics' checkpoint loader
    answers by pip installing the module's name). A timm that is not installed at all
    stays a ``ModuleNotFoundError`` for ``dependency_error``."""
    try:
        yield
    except ImportError as e:
        name = getattr(e, "name", None) or ""
        if isinstance(e, EffzooError) or not name.startswith("timm."):
            raise
        from importlib import metadata

        from ._version import TIMM_SUPPORTED, __version__

        try:
            timm = metadata.version("timm")
        except metadata.PackageNotFoundError:
            timm = "unknown"
        missing = "" if isinstance(e, ModuleNotFoundError) else f" ({e})"
        raise IncompatibleTimmError(
            f"effzoo {__version__} cannot import {name!r} from the installed timm {timm}"
            f'{missing}; it supports timm{TIMM_SUPPORTED}. Fix: pip install "timm{TIMM_SUPPORTED}" '
            '(docs/weights.md, "huggingface_hub and timm versions")',
            reason=f"timm {timm} has no {name}",
        ) from e


class DatasetUnavailableError(EffzooError, ConnectionError):
    """A dataset that is not on disk and could not be downloaded (``effzoo yolo``)."""


class OutputInUseError(EffzooError, RuntimeError):
    """An output folder another process is writing (``effzoo compare --out``); the
    message names that process."""


class RayUnavailableError(EffzooError, ConnectionError):
    """A Ray cluster that cannot be reached, or that went away mid-run."""


class DependencyError(EffzooError, ImportError):
    """A package effzoo needs (timm, huggingface_hub, torch, ...) is missing or fails when it
    is imported; the message names it, the file that failed and how to mend it."""


#: import name -> distribution name of what effzoo (and ``effzoo.yolo``) import
DEPENDENCIES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "huggingface_hub": "huggingface_hub",
    "hf_xet": "hf_xet",
    "safetensors": "safetensors",
    "numpy": "numpy",
    "filelock": "filelock",
    "yaml": "PyYAML",
    "ultralytics": "ultralytics",
}


def _failed_import(e: BaseException) -> tuple[str, str] | None:
    """(package, file) of the dependency whose import raised ``e``: a missing one by name
    (no file), else the last module-level frame of a dependency in the traceback (the
    import that failed; effzoo's own files are never taken for one)."""
    import traceback
    from pathlib import Path

    name = getattr(e, "name", None) if isinstance(e, ModuleNotFoundError) else None
    if (name or "").split(".")[0] in DEPENDENCIES:
        return str(name).split(".")[0], ""
    ours = str(Path(__file__).resolve().parent)
    files = [f.filename for f in traceback.extract_tb(e.__traceback__) if f.name == "<module>"]
    if isinstance(e, SyntaxError) and e.filename:  # the file that failed to compile: no frame
        files.append(e.filename)
    found = None
    for file in files:
        if str(Path(file).resolve()).startswith(ours):
            continue
        stem = Path(file).stem
        pkg = next((p for p in reversed(Path(file).parts[:-1]) if p in DEPENDENCIES), None)
        pkg = pkg or (stem if stem in DEPENDENCIES else None)
        if pkg is not None:
            found = (pkg, file)
    return found


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, cut at ``limit`` characters."""
    return (str(e).splitlines() or [""])[0][:limit]


def dependency_error(e: BaseException) -> DependencyError | None:
    """A ``DependencyError`` for ``e`` when it was raised while importing one of
    ``DEPENDENCIES`` (a broken install, a file that shadows the package, a package that is
    not installed); None for anything else."""
    found = _failed_import(e)
    if found is None:
        return None
    pkg, file = found
    from importlib import metadata
    from pathlib import Path

    dist_name = DEPENDENCIES[pkg]
    try:
        dist = metadata.distribution(dist_name)
        version, home = dist.version, Path(str(dist.locate_file(pkg))).resolve()
    except metadata.PackageNotFoundError:
        version, home = None, None
    first = first_line(e)
    what = f"{type(e).__name__}{': ' + first if first else ''}"
    if version is None:
        fix = f"pip install {dist_name}"
        if file:
            fix = f"it is not installed, and {file} stands in its place: move that aside and {fix}"
        return DependencyError(f"{pkg} cannot be imported ({what}); Fix: {fix}")
    shadow = file and home is not None and home not in Path(file).resolve().parents
    if shadow:
        fix = (
            f"{file} shadows the installed {pkg} {version} ({home}): rename or move it out of "
            "the working directory and PYTHONPATH"
        )
    else:
        fix = (
            f"reinstall it: pip install --force-reinstall {dist_name}=={version} (or a release "
            "that matches your torch); `effzoo env` lists the installed versions"
        )
    if shadow:
        return DependencyError(f"{pkg} fails at import ({what}); Fix: {fix}")
    where = f" in {file}" if file else ""
    return DependencyError(f"{pkg} {version} fails at import{where} ({what}); Fix: {fix}")


class DataNotFoundError(EffzooError, FileNotFoundError):
    """A data yaml (``effzoo compare --data``) that is missing or that Ultralytics cannot read."""
