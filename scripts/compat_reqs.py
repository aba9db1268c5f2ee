"""Print effzoo's requirements for scripts/compat.sh, one a line: the core dependencies
and the given extras of pyproject.toml (with the extras they name, ``effzoo[deploy]``),
without the packages a compat pair picks itself.

    python scripts/compat_reqs.py yolo test demo --drop ultralytics torch torchvision ruff
    python scripts/compat_reqs.py yolo test demo --at floor     # each at its floor: name==X
    python scripts/compat_reqs.py --floor-of torch               # one package's floor

``--at floor`` pins every requirement that has a floor (``>=X``) to it; the others (no
floor) stay as written, and pip picks their newest release. ``--at newest`` (the default)
prints them as written.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _load(text: str) -> dict:
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return _scan(text)
    return tomllib.loads(text)


def _scan(text: str) -> dict:
    """The two tables compat.sh needs, read without a TOML parser (Python 3.10)."""

    def array(body: str) -> list[str]:
        body = "\n".join(line.split("#", 1)[0] for line in body.splitlines())
        return re.findall(r'"([^"]+)"', body)

    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    extras = {
        m.group(1): array(m.group(2))
        for m in re.finditer(r"^([\w-]+) = \[(.*?)^\]", text, re.S | re.M)
        if m.group(1) != "dependencies"
    }
    return {
        "project": {
            "dependencies": array(deps.group(1)) if deps else [],
            "optional-dependencies": extras,
        }
    }


def name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def floor(requirement: str) -> str | None:
    """The ``X`` of a requirement's ``>=X`` (or ``==X``), else None."""
    m = re.search(r"(?:>=|==)\s*([\w.]+)", requirement)
    return m.group(1) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*")
    parser.add_argument("--drop", nargs="*", default=[])
    parser.add_argument("--at", choices=("newest", "floor"), default="newest")
    parser.add_argument("--floor-of", metavar="NAME", help="print NAME's floor and exit")
    args = parser.parse_args()
    project = _load(PYPROJECT.read_text(encoding="utf-8"))["project"]
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
    seen = set()
    for req in reqs:
        if name(req) in drop or name(req) == "effzoo":
            continue
        if args.at == "floor" and floor(req):
            req = f"{name(req)}=={floor(req)}"
        if req not in seen:
            seen.add(req)
            print(req)


if __name__ == "__main__":
    main()
