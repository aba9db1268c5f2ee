"""Installing effzoo as the README says (issue 27, item 1): from a checkout, and from a
wheel built from one, never from the package index (the ``effzoo`` there is another
project).

The wheel is built from a copy of the project (nothing written into the checkout) and
installed with ``--no-deps`` into a fresh virtual environment without system site
packages; a ``.pth`` file appends this venv's site-packages for the dependencies (torch,
timm, Ultralytics: a plain path line, so this checkout's editable-install finder is not
run there). The user's code then runs from a directory outside the project and must
import effzoo from the new venv.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

import effzoo

ROOT = Path(__file__).resolve().parents[1]
#: what building the project reads (pyproject.toml's readme and license included)
SOURCES = ("effzoo", "pyproject.toml", "README.md", "LICENSE", "NOTICE")
#: the first line of Ultralytics' own files (AGPL-3.0): no file of the wheel has it
ULTRALYTICS_HEADER = "Ultralytics 🚀 AGPL-3.0 License"


def _pip_lines(text: str) -> list[list[str]]:
    """The ``pip`` commands of the ```bash blocks of a markdown text, as argv lists."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("pip "):
                lines.append(shlex.split(line))
    return lines


def _pip(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of what a fresh clone holds for building effzoo."""
    root = tmp_path_factory.mktemp("clone") / "effzoo"
    root.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    return root


@pytest.fixture(scope="module")
def wheel(checkout) -> Path:
    """The wheel, built by README's own `pip wheel` line (offline: no build isolation,
    this venv's setuptools; the build needs nothing else)."""
    lines = [a for a in _pip_lines((ROOT / "README.md").read_text()) if a[1] == "wheel"]
    assert len(lines) == 1, lines
    out = _pip([*lines[0][1:], "--no-build-isolation", "--no-index"], checkout)
    assert out.returncode == 0, out.stderr[-3000:]
    wheels = list((checkout / "dist").glob("effzoo-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_every_pip_install_line_of_the_docs_works_from_the_project_root(checkout, wheel):
    """Each `pip install` line of README and docs/, as written, in the project root
    (``--dry-run`` and ``--no-index``: what it installs is resolved against this venv, the
    index is not asked; an unresolvable extra or a path that is not there fails here)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    installs = [a for a in _pip_lines(text) if a[1] == "install"]
    assert len(installs) >= 5, installs
    for argv in installs:
        assert not any(a.split("[")[0] == "effzoo" for a in argv[2:]), argv  # not the index's
        out = _pip([*argv[1:], "--dry-run", "--no-index", "--no-build-isolation"], checkout)
        assert out.returncode == 0, (argv, out.stderr[-3000:])
        assert "effzoo" in out.stdout, (argv, out.stdout[-2000:])
    assert wheel.name in " ".join(" ".join(a) for a in installs)  # the version is current
    assert f"effzoo-{effzoo.__version__}-" in wheel.name


def test_the_readme_says_the_index_name_is_not_this_project_and_how_to_stop_autoinstall():
    readme = (ROOT / "README.md").read_text()
    assert "The name `effzoo` on PyPI is not this project" in " ".join(readme.split())
    assert "YOLO_AUTOINSTALL=false" in readme


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv without system site packages (and without pip: the wheel goes in with
    this venv's pip) that sees this venv's dependencies through one plain .pth line."""
    where = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where


def _run(venv: Path, code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(HF_HUB_OFFLINE="1", YOLO_OFFLINE="true", **env)
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=full,
    )


@pytest.mark.slow
@pytest.mark.parametrize("autoinstall", ["false", None])
def test_a_checkpoint_without_effzoo_and_autoinstall_off_installs_nothing(
    autoinstall, venv, tmp_path
):
    """Where effzoo is missing, Ultralytics' AutoInstall answers with `pip install effzoo`
    (the index's project); YOLO_AUTOINSTALL=false turns that into the plain error. Every
    process Ultralytics starts is recorded and refused (nothing is installed either way),
    and Ultralytics is told it is online, so that only the setting differs."""
    ckpt = ROOT / "tests" / "data" / "effzoo-0.1.0-tiny-best.pt"
    code = f"""
        import importlib.util, subprocess
        assert importlib.util.find_spec("effzoo") is None, "effzoo is importable"
        started = []
        def refuse(self, args, *a, **k):
            started.append(args if isinstance(args, str) else " ".join(map(str, args)))
            raise FileNotFoundError("no processes in this test")
        subprocess.Popen.__init__ = refuse
        from importlib import metadata
        version = metadata.version
        def hidden(name):  # the dependencies' venv has effzoo's metadata: not a fresh machine
            if name == "effzoo":
                raise metadata.PackageNotFoundError(name)
            return version(name)
        metadata.version = hidden
        from ultralytics import YOLO
        from ultralytics.utils import checks
        checks.ONLINE = True  # as on a machine with a network: only the setting differs
        try:
            YOLO({str(ckpt)!r})
        except ModuleNotFoundError as e:
            print("missing:", e.name)
        installs = [c for c in started if "install" in c and "effzoo" in c]
        print("installs:", installs)
    """
    env = {"YOLO_CONFIG_DIR": str(tmp_path)}
    if autoinstall is not None:
        env["YOLO_AUTOINSTALL"] = autoinstall
    out = _run(venv, code, tmp_path, **env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "missing: effzoo" in out.stdout, out.stdout
    if autoinstall == "false":
        assert "installs: []" in out.stdout, out.stdout
    else:  # what the README warns about: Ultralytics' default runs `pip install effzoo`
        assert "installs: []" not in out.stdout, out.stdout


@pytest.mark.slow
def test_the_wheel_installs_into_a_clean_venv_and_builds_a_yolo_model(wheel, venv, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "effzoo/weights/data/catalogue.json" in names and "effzoo/py.typed" in names
    assert all(n.startswith(("effzoo/", "effzoo-")) for n in names), names  # no tests/
    assert not [n for n in names if n.endswith((".yaml", ".yml", ".pt"))], names
    with zipfile.ZipFile(wheel) as z:  # nothing derived from Ultralytics' own files
        for n in names:
            assert ULTRALYTICS_HEADER not in z.read(n).decode("utf-8", "replace"), n

    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            f"{wheel}[yolo]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    code = """
        import warnings
        import effzoo, torch
        print("file:", effzoo.__file__)
        m = effzoo.create("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
        print("shapes:", [tuple(f.shape) for f in m(torch.zeros(1, 3, 64, 64))])
        import effzoo.yolo
        from ultralytics import YOLO
        print("examples:", len(effzoo.yolo.list_cfgs()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", effzoo.yolo.PretrainedUnavailableWarning)
            model = YOLO("yolo11n-effb1.yaml")
        print("backbone:", model.model.model[0].backbone.spec.name)
    """
    out = _run(venv, code, tmp_path, YOLO_CONFIG_DIR=str(tmp_path / "ultralytics"))
    assert out.returncode == 0, out.stderr[-3000:]
    file = Path(out.stdout.split("file: ")[1].split()[0])
    assert file.is_relative_to(venv) and not file.is_relative_to(ROOT), file
    assert "shapes: [(1, 16, 8, 8), (1, 32, 4, 4), (1, 80, 2, 2)]" in out.stdout, out.stdout
    assert "backbone: efficientnet_b1" in out.stdout, out.stdout
    cli = subprocess.run(
        [str(venv / "bin" / "effzoo"), "info", "efficientnet_b0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert cli.returncode == 0 and "efficientnet_b0" in cli.stdout, cli.stderr[-2000:]
