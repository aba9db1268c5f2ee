"""Every input of ``effzoo compare`` checked before anything trains, with Ultralytics'
own checks where it has one: the data (its yaml, each split's images and labels), the
device, the train arguments (the candidates are candidates.py's). Each failure is one
line naming the input and a fix, the option spelt as its caller typed it: ``--data`` on
the command line (``command_line()``), ``data=`` from Python.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from io import StringIO
from itertools import repeat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .. import _checks as checks
from ..errors import DataNotFoundError

#: train arguments ``compare`` sets itself (the same for every candidate)
OWN = frozenset(
    "model data epochs imgsz batch seed seeds device project name exist_ok resume".split()
)
#: the demo data's size (effzoo.demo's)
DEMO_IMAGES = (96, 32)
#: the flags of ``compare()``'s keywords whose flag is not ``--keyword``
_FLAGS = {"runtimes": "--runtime", "ray_address": "--ray", "train_args": "KEY=VALUE"}
_CLI: ContextVar[bool] = ContextVar("effzoo_compare_cli", default=False)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: the symbols Ultralytics decorates its messages with
_DECOR = re.compile(r"[\u2600-\u27bf\U0001f300-\U0001faff\ufe0f]")


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Within: messages name options as the command line spells them (``--data``)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def option(name: str) -> str:
    """``compare()``'s keyword ``name`` as the caller spells it: ``--per-round`` on the
    command line, ``per_round`` from Python."""
    if not _CLI.get():
        return name
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def given(name: str, value: Any) -> str:
    """An option with its value as the caller typed it: ``--data x.yaml`` or ``data='x.yaml'``."""
    return f"{option(name)} {value}" if _CLI.get() else f"{name}={str(value)!r}"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Ultralytics' log and prints silenced (its checks log before they raise)."""
    logger = logging.getLogger("ultralytics")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(StringIO()), contextlib.redirect_stderr(StringIO()):
            yield
    finally:
        logger.setLevel(level)


def one_line(e: BaseException) -> str:
    """Ultralytics' message on one line (without its colours and decorations)."""
    text = " ".join(_DECOR.sub("", _ANSI.sub("", str(e))).split())
    return re.sub(r"\s+([.,;:])", r"\1", text).rstrip(".") or type(e).__name__


def check_data(data: str | os.PathLike[str] | None) -> tuple[str | None, dict[str, Any]]:
    """The user's data yaml as Ultralytics reads it (nothing downloaded), its train and
    val splits checked image by image; or None for the demo data. Also returns its
    identity for the run keys."""
    if data is None:
        import importlib.util

        if importlib.util.find_spec("skimage") is None:
            checks.fail(
                'the demo data needs scikit-image: pip install "scikit-image>=0.24", or give '
                f"{option('data')} YOUR_DATA.yaml"
            )
        return None, {"demo": DEMO_IMAGES}
    path = Path(os.fspath(data)).expanduser()
    what = given("data", data)
    if not path.is_file():
        raise DataNotFoundError(
            f"{what}: no such file; give an Ultralytics data yaml (train:, val:, names:), or "
            f"leave {option('data')} out to compare on effzoo's demo data"
        )
    from ultralytics.data.utils import check_det_dataset

    try:
        with quiet():
            info = check_det_dataset(str(path), autodownload=False)
    except Exception as e:  # Ultralytics' own message (it names the key or path), one line
        raise DataNotFoundError(
            f"{what}: {one_line(e)} (Ultralytics); an Ultralytics data yaml has train: and "
            "val: (image folders or lists) and names: (the class names)"
        ) from e
    for split in ("train", "val"):
        _check_split(what, split, info[split], len(info["names"]))
    text = path.read_text(encoding="utf-8", errors="replace")
    return str(path.resolve()), {"yaml": str(path.resolve()), "text": text, "nc": info["nc"]}


def _check_split(what: str, split: str, where: str | list[str], nc: int) -> None:
    """Every image of one split read and its labels parsed, as Ultralytics' dataset scan
    does (``verify_image_label``): a split without images or without any label file, or
    an image Ultralytics would drop (a class id outside ``names``, a malformed row, an
    unreadable image) is refused here."""
    from multiprocessing.pool import ThreadPool

    from ultralytics.data.base import BaseDataset
    from ultralytics.data.utils import img2label_paths, verify_image_label
    from ultralytics.utils import NUM_THREADS

    try:  # Ultralytics' own listing (folders, list files), as its dataset makes it
        with quiet():
            files = BaseDataset.get_img_files(SimpleNamespace(prefix="", fraction=1.0), where)
    except FileNotFoundError:
        raise DataNotFoundError(
            f"{what}: the {split} split ({where}) holds no images Ultralytics reads (jpg, png, "
            f"...): put the {split} images there, or point {split}: at the folder that holds them"
        ) from None
    labels = img2label_paths(files)
    if not any(os.path.isfile(f) for f in labels):
        raise DataNotFoundError(
            f"{what}: none of the {len(files)} {split} images has a label file; Ultralytics "
            f"reads an image's boxes from the labels/ folder beside images/ ({files[0]} -> "
            f"{labels[0]}): put the labels in {Path(labels[0]).parent}"
        )
    args = zip(
        files, labels, repeat(""), repeat(False), repeat(nc), repeat(0), repeat(0), repeat(False)
    )
    with quiet(), ThreadPool(NUM_THREADS) as pool:
        results = pool.map(verify_image_label, args)
    dropped = [i for i, r in enumerate(results) if r[8]]  # its count of corrupt pairs
    if dropped:
        i = dropped[0]
        why = " ".join(results[i][-1].split("ignoring corrupt image/label:")[-1].split())
        checks.fail(
            f"{what}: Ultralytics would drop {len(dropped)} of {len(files)} {split} images, "
            f"first {files[i]} (labels {labels[i]}): {why}; fix the label file (rows: "
            f"class x y w h, normalized; class ids 0 to {nc - 1}, as names: lists them) "
            "or remove the image",
        )


def check_device(device: str, *, remote: bool = False) -> str:
    """The device as Ultralytics' ``select_device`` takes it on this machine; ``mps``
    where an Apple GPU exists only (Ultralytics would run on the CPU without a word). A
    GPU on a remote Ray cluster is the cluster's to have (``remote``)."""
    from .runtimes import gpu

    text = str(device).strip()
    if remote and gpu(text):
        return text
    import torch
    from ultralytics.utils.torch_utils import select_device

    try:
        with quiet():
            got = select_device(text, verbose=False)
    except ValueError as e:
        n = torch.cuda.device_count()
        have = f"one of 0 to {n - 1}, or " if n else ""
        checks.fail(
            f"{given('device', device)}: not a device of this machine (Ultralytics: "
            f"{one_line(e).split(' Use ')[0].rstrip('.')}; torch sees {n} CUDA device(s)): give "
            f"{have}{given('device', 'cpu')}"
        )
    if text.lower().startswith("mps") and getattr(got, "type", got) != "mps":
        checks.fail(
            f"{given('device', device)}: this machine has no Apple GPU (MPS), and "
            f"Ultralytics would run on the CPU: give {given('device', 'cpu')}"
        )
    return text


def _probe() -> Any:
    """A one-layer model for Ultralytics' optimizer builder (``check_train_args``)."""
    from torch import nn

    probe = nn.Module()
    probe.model = nn.Sequential(nn.Conv2d(3, 4, 1))
    return probe


def check_train_args(train_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ultralytics' train arguments, checked as ``yolo train`` checks them (names, types,
    ranges: ``check_dict_alignment`` and ``check_cfg``; the optimizer by the trainer's
    own builder); compare's own options are refused."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg, check_dict_alignment

    extra = dict(train_args or {})
    taken = sorted(set(extra) & OWN)
    if taken:
        own = ", ".join(option(n) for n in ("data", "epochs", "imgsz", "batch", "seeds", "device"))
        checks.fail(
            f"train argument(s) {', '.join(taken)} are compare's own options, the same for "
            f"every candidate: use {own}"
        )
    try:
        with quiet():
            check_dict_alignment(DEFAULT_CFG_DICT, extra)
            check_cfg(dict(extra))
    except (SyntaxError, TypeError, ValueError) as e:
        checks.fail(
            f"train argument: {one_line(e)} (Ultralytics' check, as `yolo train` makes it); "
            "`effzoo yolo cfg` lists Ultralytics' train arguments and their defaults"
        )
    name = extra.get("optimizer")
    if name is not None and str(name).lower() != "auto":
        from ultralytics.engine.trainer import BaseTrainer

        trainer = SimpleNamespace(args=SimpleNamespace(**DEFAULT_CFG_DICT))
        try:
            with quiet():
                BaseTrainer.build_optimizer(trainer, _probe(), name=name)
        except NotImplementedError as e:
            checks.fail(f"train argument: {one_line(e).split(' Request ')[0]} (Ultralytics)")
    return extra


__all__ = ["check_data", "check_device", "check_train_args", "command_line", "given", "option"]
