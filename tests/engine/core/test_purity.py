"""engine/core imports neither Django nor the IB library (DESIGN §1)."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine.core

ROOT = Path(__file__).resolve().parents[3]


def test_core_modules_import_no_django_and_no_ib_library():
    modules = [f"engine.core.{m.name}" for m in pkgutil.iter_modules(engine.core.__path__)]
    assert {"engine.core.rules", "engine.core.machine", "engine.core.replay"} <= set(modules)
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, check=True, env={"PYTHONPATH": str(ROOT)})  # fmt: skip
    loaded = json.loads(result.stdout)
    forbidden = [m for m in loaded if m.split(".")[0] in {"django", "ib_async", "ib_insync"}]
    assert forbidden == []
    # The engine package itself must stay importable without Django for this to hold.
    assert "engine.core.machine" in loaded
