"""`make run` passes the port and host through to runapp (README: `make run PORT=8311`)."""

import shutil
import subprocess

import pytest

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
