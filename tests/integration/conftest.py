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


@pytest.fixture(scope="session")
def lab_mirror(lab_env) -> Path:
    """The lab's mirror stage has run (playbooks/mirror.yml with the lab inventory): the real Renku charts and
    every image they run are in the internal registry. Test workers take turns; a rerun copies nothing."""
    import fcntl

    from playbook import run_playbook

    state = Path(lab_env["LAB_STATE"])
    with open(state / "mirror-stage.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        result = run_playbook(ROOT / "playbooks" / "mirror.yml")
        assert result.rc == 0, result.output[-4000:]
    return state / "mirror" / "mirror-lock.yaml"
