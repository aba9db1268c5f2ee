"""Splicing an effzoo row into a parsed Ultralytics model yaml, and writing the result.

The effzoo row replaces the stock stem and stages up to P5 and occupies indices 0-4
(P1..P5); every later index is shifted so the head still reads the same layers
(``templates`` says which file and row; this module rewrites the parsed yaml and renders
it as text).
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

from ..errors import UltralyticsContractError

#: backbone rows that stay after the effzoo row (they read P5)
_KEPT = ("SPPF", "C2PSA")
#: the levels the effzoo row occupies: P1..P5
LEVELS = 5


def _stride(module: Any, args: Any) -> int:
    """How much a stock backbone row downsamples, read from what its module does: the row
    built alone by Ultralytics' own parser (64 input channels, else 3) and run on 32x32
    (ADown, for one, halves the size with no stride among its arguments); 1 for a row
    that cannot be built alone."""
    return _measured_stride(str(module), repr(args if isinstance(args, list) else []))


@functools.cache
def _measured_stride(module: str, args_repr: str) -> int:
    import ast

    import torch
    from ultralytics.nn import tasks

    parse = getattr(tasks.parse_model, "__wrapped__", tasks.parse_model)
    try:
        row = [-1, 1, module, ast.literal_eval(args_repr)]
    except (ValueError, SyntaxError):  # arguments no yaml row can hold
        return 1
    for ch in (64, 3):  # a later row, or a first one that states the image's 3 channels
        try:
            with torch.no_grad():
                layers, _ = parse({"nc": 1, "backbone": [row], "head": []}, ch=ch, verbose=False)
                out = layers.eval()(torch.zeros(1, ch, 32, 32))
        except Exception:  # not with these channels (or not alone)
            continue
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            return max(1, 32 // int(out.shape[-1]))
    return 1


def _shift(stock_backbone: list[list[Any]], source: str) -> tuple[int, dict[int, int]]:
    """(first kept row, old index -> new index of each P-level's last row).

    A row's level is the log2 of the stride so far (each row's measured by ``_stride``);
    everything before SPPF/C2PSA (or the whole backbone where there is neither: YOLO12,
    RT-DETR) up to P5 is what the effzoo row replaces. Rows that go past P5 (a P6
    variant's stride-2 ``Conv`` to P6/64 and its block) stay: they build P6 from the row's
    P5, as they built it from the stock P5 (no EfficientNet has a stride-64 level)."""
    keep = next((i for i, r in enumerate(stock_backbone) if r[2] in _KEPT), len(stock_backbone))
    stride, ends = 1, {}
    for i, (_, _, module, args) in enumerate(stock_backbone[:keep]):
        if stride * _stride(module, args) > 2**LEVELS:  # P6 on: stock rows, kept
            keep = i
            break
        stride *= _stride(module, args)
        ends[stride.bit_length() - 1] = i
    if not {3, 4, 5} <= set(ends):
        raise UltralyticsContractError(
            f"{source} does not have the backbone effzoo expects (five stride-2 levels, P3, "
            f"P4 and P5 among them, before {' or '.join(_KEPT)}); effzoo cannot place its "
            "row in it"
        )
    return keep, {ends[k]: k - 1 for k in ends if k >= 1}


def splice(
    stock: dict[str, Any], row: tuple[Any, ...], *, source: str = "model yaml"
) -> dict[str, Any]:
    """``stock`` (a parsed Ultralytics model yaml) with its stem and stages replaced by
    ``row``. Where the first kept row is C2PSA (the classify files: no SPPF before it),
    which keeps its channel count, a 1x1 ``Conv`` to C2PSA's width is put in front of
    it, as SPPF does in the detection files."""
    keep, level_ends = _shift(stock["backbone"], source)
    kept = stock["backbone"][keep:]
    bridge = [[-1, 1, "Conv", [kept[0][3][0], 1, 1]]] if kept and kept[0][2] == "C2PSA" else []
    offset = keep - LEVELS - len(bridge)

    def new(i: int) -> int:
        if i < 0:
            return i
        if i >= keep:
            return i - offset
        if i in level_ends:
            return level_ends[i]
        raise UltralyticsContractError(
            f"{source}: a row reads backbone layer {i}, which is not a P-level output; "
            "effzoo cannot place its row in this file"
        )

    def remap(r: list[Any]) -> list[Any]:
        frm = [new(i) for i in r[0]] if isinstance(r[0], list) else new(r[0])
        return [frm, *r[1:]]

    out = {k: v for k, v in stock.items() if k not in ("backbone", "head")}
    out["backbone"] = [list(row), *bridge] + [remap(r) for r in kept]
    out["head"] = [remap(r) for r in stock.get("head") or []]
    return out


_PLAIN = re.compile(r"[A-Za-z_][\w.\-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _flow(value: Any) -> str:
    """A value in YAML flow style, as Ultralytics' files write it."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "None"  # Ultralytics evaluates the string "None" to None
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS
        return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def render(d: dict[str, Any], *, header: list[str]) -> str:
    """The text of a model yaml: ``header`` comment lines, the parameters, the rows."""
    lines = [f"# {h}" if h else "#" for h in header] + [""]
    for key, value in d.items():
        if key in ("backbone", "head"):
            continue
        if key == "scales":
            lines.append("scales: # [depth, width, max_channels]; the scale sizes the head")
            lines += [f"  {k}: {_flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {_flow(value)}")
    # each row's index: the effzoo row occupies 0-4, the rows after it one each
    notes = itertools.chain(["0-4 P1/2, P2/4, P3/8, P4/16, P5/32"], itertools.count(LEVELS))
    for section in ("backbone", "head"):
        lines += ["", f"{section}:"]
        if section == "backbone":
            lines.append("  # [from, repeats, module, args]")
        lines += [f"  - {_flow(row)} # {next(notes)}" for row in d[section]]
    return "\n".join(lines) + "\n"
