"""The Ultralytics floor: ``import effzoo.yolo`` refuses an older release with one error
naming both versions and a command that works in any shell (scripts/compat.sh measures
the floor; docs/yolo.md, "Ultralytics versions", holds its last table)."""

from __future__ import annotations

import re

import pytest
import yolo_helpers

ultralytics = pytest.importorskip("ultralytics")

import effzoo  # noqa: E402
import effzoo.yolo  # noqa: E402
from effzoo.errors import UltralyticsContractError  # noqa: E402
from effzoo.yolo import patches, seams  # noqa: E402

FLOOR = patches.FLOOR
UPGRADE = f'pip install -U "ultralytics>={FLOOR}"'


def _refusal(monkeypatch: pytest.MonkeyPatch, version: str) -> str | None:
    """The error check_version() raises with ``version`` installed (None: accepted)."""
    monkeypatch.setattr(ultralytics, "__version__", version)
    try:
        patches.check_version()
    except UltralyticsContractError as e:
        return str(e)
    return None


def _commands(msg: str) -> list[str]:
    return re.findall(r"pip install[^:;()]*", msg)


def test_an_older_release_is_refused_naming_both_versions(monkeypatch):
    msg = _refusal(monkeypatch, "8.3.58")
    assert msg is not None
    assert f"needs Ultralytics >= {FLOOR}" in msg and "this environment has 8.3.58" in msg
    assert UPGRADE in msg
    assert "effzoo[" not in msg, "the effzoo on the package index is another project"
    assert "'" not in msg, "a single-quoted command does not work in cmd.exe"
    with pytest.raises(effzoo.EffzooError), pytest.MonkeyPatch.context() as mp:
        mp.setattr(ultralytics, "__version__", "8.3.58")
        patches.check_version()


@pytest.mark.parametrize("version", ["8.3.58", "8.3.9", "8.3.0", "8.2.103", "8.0.0", "7.9.99"])
def test_releases_before_the_floor_are_refused(monkeypatch, version):
    assert _refusal(monkeypatch, version) is not None, version


@pytest.mark.parametrize("version", [FLOOR, "8.3.100", "8.4.190", "8.10.0", "9.0", "8.3.59.post1"])
def test_the_floor_and_later_releases_are_accepted(monkeypatch, version):
    assert _refusal(monkeypatch, version) is None, version


def test_the_installed_release_is_accepted():
    assert not seams._older(ultralytics.__version__, FLOOR)
    patches.check_version()
    assert patches.registered()


def test_an_unreadable_version_is_left_to_the_contract_check(monkeypatch):
    assert _refusal(monkeypatch, "unknown") is None


def test_importing_effzoo_yolo_on_an_older_release_raises_before_patching():
    code = """
        import ultralytics
        from ultralytics.nn import tasks
        ultralytics.__version__ = "8.3.58"
        del tasks.Index  # as on 8.3.58: the version check comes before the contract check
        try:
            import effzoo.yolo
        except Exception as e:
            print(type(e).__name__, tasks.parse_model.__module__)
            print(e)
        else:
            print("imported")
    """
    first, msg = yolo_helpers.run_fresh(code).split("\n", 1)
    assert first.split() == ["UltralyticsContractError", "ultralytics.nn.tasks"]
    assert "8.3.58" in msg and FLOOR in msg and UPGRADE in msg
    assert "Index" not in msg, "the version is named, not a missing internal"


def test_every_suggested_command_is_double_quoted(monkeypatch):
    version_msg = _refusal(monkeypatch, "8.3.58")
    monkeypatch.undo()
    from ultralytics.nn import tasks

    monkeypatch.delattr(tasks, "Index")
    with pytest.raises(UltralyticsContractError) as e:
        patches.check_contract()
    for msg in (version_msg, str(e.value)):
        commands = _commands(msg)
        assert commands, msg
        for command in commands:
            assert '"ultralytics>=' in command or '"effzoo[yolo]"' in command, command
            assert "'" not in command, command


def test_the_floor_is_the_same_everywhere():
    assert patches.SUPPORTED == f">={FLOOR}"
    pyproject = (yolo_helpers.ROOT / "pyproject.toml").read_text()
    extra = pyproject[pyproject.index("yolo = [") :]
    extra = extra[: extra.index("\n]")]
    assert re.findall(r'"ultralytics([^"]*)"', extra) == [f">={FLOOR}"]
    doc = (yolo_helpers.ROOT / "docs" / "yolo.md").read_text()
    section = doc[doc.index("## Ultralytics versions") :]
    section = section[: section.index("\n## ", 1)]
    assert f"`{FLOOR}`" in section or f"{FLOOR} " in section
    assert UPGRADE in section and "bash scripts/compat.sh" in section
