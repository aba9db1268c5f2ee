"""Print effzoo's requirements for scripts/compat.sh, one a line: the core dependencies
and the given extras of pyproject.toml (with the extras they name, ``effzoo[deploy]``),
without the packages a compat pair picks itself.

    python scripts/compat_reqs.py yolo test demo --drop ultralytics torch torchvision ruff
    python scripts/compat_reqs.py yolo test demo --at floor     # each at its floor: name==X
    python scripts/compat_reqs.py --floor-of torch               # one package's floor
    python scripts/compat_reqs.py yolo test --at floor --installable  # see below

``--at floor`` pins every requirement that has a floor (``>=X``) to it; the others (no
floor) stay as written, and pip picks their newest release. ``--at newest`` (the default)
prints them as written. ``--installable`` (with ``--at floor``) asks pip (a dry run,
wheels only) whether each floor installs on the interpreter running this script, and
raises a floor that has no wheel for it to the oldest release that has one (e.g. ray 2.10
has none for Python 3.12): each raise is said on stderr, one line a package.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

try:  # pip's own version rules (pip vendors packaging: every interpreter with pip has it)
    from packaging.version import InvalidVersion, Version
except ImportError:
    from pip._vendor.packaging.version import InvalidVersion, Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def floor(requirement: str) -> str | None:
    """The ``X`` of a requirement's ``>=X`` (or ``==X``), else None."""
    m = re.search(r"(?:>=|==)\s*([\w.]+)", requirement)
    return m.group(1) if m else None


def _parse(text: str) -> Version | None:
    try:
        return Version(text.strip())
    except InvalidVersion:
        return None


def installable(reqs: list[str]) -> list[str]:
    """``reqs`` with each ``name==X`` pip finds no wheel of for this interpreter raised to
    the oldest later release that has one (what pip lists as available)."""
    reqs = list(reqs)
    for _ in range(len(reqs) + 1):
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        cmd += ["--only-binary=:all:", "-q", *reqs]
        err = subprocess.run(cmd, capture_output=True, text=True).stderr
        m = re.search(r"requirement ([\w.-]+)==([\w.]+) \(from versions: ([^)]*)\)", err)
        if not m:
            if "ERROR" in err:
                sys.stderr.write(err)
            return reqs
        pkg, old, listed = m.groups()
        later = [v for v in map(_parse, listed.split(",")) if v and v > Version(old)]
        later = [v for v in later if not v.is_prerelease]
        if not later:
            sys.stderr.write(err)
            return reqs
        new = min(later)
        py = ".".join(map(str, sys.version_info[:2]))
        print(
            f"{pkg} {old} has no wheel for Python {py}: {new}, the oldest that has", file=sys.stderr
        )
        reqs = [f"{pkg}=={new}" if name(r) == name(pkg) and "==" in r else r for r in reqs]
    return reqs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*")
    parser.add_argument("--drop", nargs="*", default=[])
    parser.add_argument("--at", choices=("newest", "floor"), default="newest")
    parser.add_argument("--floor-of", metavar="NAME", help="print NAME's floor and exit")
    parser.add_argument(
        "--installable",
        action="store_true",
        help="raise a floor with no wheel for this Python (see above)",
    )
    args = parser.parse_args()
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    wanted, done = list(args.extras), set()
    while wanted:  # an extra that names effzoo[other] brings other's requirements too
        extra = wanted.pop(0)
        if extra in done:
            continue
        if extra not in optional:
            raise SystemExit(f"compat_reqs.py: pyproject.toml has no extra {extra!r}")
        done.add(extra)
        for req in optional[extra]:
            own = re.fullmatch(r"effzoo\[([\w,\s-]+)\]", req.strip())
            if own:
                wanted += [e.strip() for e in own.group(1).split(",")]
            reqs.append(req)
    if args.floor_of:
        every = reqs + [r for extra in optional.values() for r in extra]
        found = [floor(r) for r in every if name(r) == name(args.floor_of) and floor(r)]
        if not found:
            raise SystemExit(f"compat_reqs.py: pyproject.toml gives {args.floor_of} no floor")
        print(found[0])
        return
    drop = {name(d) for d in args.drop}
    out: list[str] = []
    for req in reqs:
        if name(req) in drop or name(req) == "effzoo":
            continue
        if args.at == "floor" and floor(req):
            req = f"{name(req)}=={floor(req)}"
        if req not in out:
            out.append(req)
    if args.installable and args.at == "floor":
        out = installable(out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
