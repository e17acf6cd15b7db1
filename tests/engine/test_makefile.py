"""`make run` passes the port and host through to runapp (README: `make run PORT=8311`);
`make venv` / `make venv-insync` install exactly the lock files (docs/decisions.md)."""

import os
import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.conftest import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_takes_port_and_host():
    result = subprocess.run(
        ["make", "-n", "run", "PORT=8311", "HOST=0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "manage.py runapp --host 0.0.0.0 --port 8311" in result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_defaults_to_the_loopback_port_8000():
    result = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "manage.py runapp --host 127.0.0.1 --port 8000" in result.stdout


# --- installs come from the lock files, never from pyproject's ranges --------------------

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make_dry_run(*args, cwd=ROOT):
    result = subprocess.run(
        ["make", "-n", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return re.sub(r"\\\n\s*", " ", result.stdout)  # one line per command


@needs_make
def test_make_venv_installs_exactly_uv_lock_with_an_exactly_pinned_uv():
    out = make_dry_run("-B", "venv")
    assert re.search(r'pip install --quiet "uv==\d+\.\d+\.\d+"', out), out
    assert re.search(
        r"^test -x .venv/bin/python \|\| .venv-tools/bin/uv venv --quiet --python /\S+ .venv$",
        out,
        re.M,
    ), out
    (sync,) = [line for line in out.splitlines() if " sync " in line]
    assert sync.startswith("UV_PROJECT_ENVIRONMENT=.venv .venv-tools/bin/uv sync "), sync
    for flag in ("--locked", "--extra test", "--no-install-project"):
        assert flag in sync, sync
    # pyproject's ranges say what is allowed; nothing installs from them directly.
    assert "pip install --quiet ." not in out
    assert ".[test]" not in out


@needs_make
def test_make_venv_insync_installs_only_the_hashed_pins():
    out = make_dry_run("-B", "venv-insync")
    assert (
        ".venv-tools/bin/uv pip sync --quiet --require-hashes"
        " --python .venv-insync/bin/python requirements/insync.txt"
    ) in out
    lines = (ROOT / "requirements/insync.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith(("#", " "))]
    for line in pins:
        assert re.fullmatch(r"[a-z0-9-]+==[\w.]+( ; .+)? \\", line), line
    names = {line.split("==")[0] for line in pins}
    assert {"ib-insync", "exchange-calendars", "pytest"} <= names
    assert "ib-async" not in names  # never both IB libraries in one env


@needs_make
def test_the_stamps_are_rebuilt_when_pyproject_or_a_lock_file_changes(tmp_path):
    sources = ["pyproject.toml", "uv.lock", "requirements/insync.txt"]
    for name in ["Makefile", *sources]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    stamps = [f".venv-tools/.uv-{uv_version}", ".venv/.installed", ".venv-insync/.installed"]
    for stamp in stamps:
        (tmp_path / stamp).parent.mkdir(exist_ok=True)
        (tmp_path / stamp).touch()

    def dry_run_after_touching(changed):
        for i, path in enumerate(sources + stamps):
            os.utime(tmp_path / path, (1_000_000 + i, 1_000_000 + i))  # stamps newest
        if changed:
            os.utime(tmp_path / changed, (2_000_000, 2_000_000))
        out = make_dry_run("venv", "venv-insync", cwd=tmp_path)
        return "uv sync" in out, "uv pip sync" in out

    assert dry_run_after_touching(None) == (False, False)
    assert dry_run_after_touching("pyproject.toml") == (True, False)
    assert dry_run_after_touching("uv.lock") == (True, False)
    assert dry_run_after_touching("requirements/insync.txt") == (False, True)


def test_uv_lock_was_resolved_from_pyprojects_current_dependencies():
    """What `uv sync --locked` checks at install time, said here with the fix: `make lock`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    wanted = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        wanted += [f"{req}; extra == '{extra}'" for req in requirements]
    wanted = {
        (canonicalize_name(r.name), SpecifierSet(str(r.specifier)), r.marker)
        for r in map(Requirement, wanted)
    }
    (ours,) = [p for p in lock["package"] if p["name"] == project["name"]]
    locked = {
        (
            d["name"],
            SpecifierSet(d.get("specifier", "")),
            Marker(d["marker"]) if "marker" in d else None,
        )
        for d in ours["metadata"]["requires-dist"]
    }
    assert locked == wanted, "pyproject's dependencies changed since uv.lock: run `make lock`"
    versions = {p["name"]: p["version"] for p in lock["package"]}
    assert versions["mypy"] == "2.4.1"
