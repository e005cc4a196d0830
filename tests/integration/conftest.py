"""Fixtures for tests against the lab (started by `make lab-up`; `make integration` does it first)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def lab_env() -> dict[str, str]:
    """The lab's connection data (the same as `make -s lab-env`); fails when the lab is not healthy."""
    status = subprocess.run(
        [sys.executable, str(ROOT / "lab" / "lab.py"), "status"], capture_output=True, text=True, check=False
    )
    if status.returncode != 0:
        pytest.fail(f"the lab is not healthy; run `make lab-up`:\n{status.stdout}{status.stderr}")
    out = subprocess.run(
        [sys.executable, str(ROOT / "lab" / "lab.py"), "json"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)
