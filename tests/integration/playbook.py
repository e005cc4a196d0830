"""Run ansible-playbook against the lab and read the outcome: the scenario harness for roles.

Each role's scenario lives in tests/integration/scenarios/<name>/ with `converge.yml` and `verify.yml`
(and optionally `cleanup.yml`); `run_scenario` runs syntax-check -> check -> converge -> idempotence ->
verify, asserting check mode changed nothing on the lab and the second converge reports changed=0.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "integration" / "scenarios"
ANSIBLE_PLAYBOOK = str(ROOT / ".venv" / "bin" / "ansible-playbook")


@dataclass
class PlaybookResult:
    rc: int
    stats: dict[str, dict[str, int]]
    output: str
    plays: list[dict]

    @property
    def changed(self) -> int:
        return sum(host.get("changed", 0) for host in self.stats.values())

    @property
    def failed(self) -> int:
        return sum(host.get("failures", 0) + host.get("unreachable", 0) for host in self.stats.values())

    def task_results(self, task_name: str) -> list[dict]:
        """Results of every task named `task_name`, per host."""
        found = []
        for play in self.plays:
            for task in play.get("tasks", []):
                if task["task"]["name"] == task_name:
                    found.extend(task["hosts"].values())
        return found

    def changed_tasks(self) -> list[str]:
        names = []
        for play in self.plays:
            for task in play.get("tasks", []):
                changed = [h for h in task["hosts"].values() if h.get("changed")]
                if changed:
                    names.append(task["task"]["name"] + what_changed(changed))
        return names


def what_changed(results: list[dict]) -> str:
    """The object lists a module reports (created/updated/pruned/...), so a failed idempotence check says which."""
    keys = ("created", "updated", "pruned", "deleted", "hooks_run", "copied", "written")
    found = {k: r[k] for r in results for k in keys if isinstance(r.get(k), list) and r[k]}
    return f" {found}" if found else ""


def run_playbook(
    playbook: str | Path,
    inventory: str | Path | None = None,
    check: bool = False,
    diff: bool = False,
    extra_vars: dict | None = None,
    limit: str | None = None,
    env: dict[str, str] | None = None,
    tags: str | None = None,
) -> PlaybookResult:
    """ansible-playbook with the JSON callback; never raises on a failed play (assert on .rc / .failed)."""
    cmd = [ANSIBLE_PLAYBOOK, str(playbook), "-i", str(inventory or ROOT / "inventories" / "lab")]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", tags]
    run_env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, check=False)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        data = {"stats": {}, "plays": []}
    return PlaybookResult(proc.returncode, data.get("stats", {}), proc.stdout + proc.stderr, data.get("plays", []))


def run_scenario(
    name: str,
    extra_vars: dict | None = None,
    inventory: str | Path | None = None,
    after_check: Callable[[], None] | None = None,
) -> dict:
    """check -> converge -> idempotence -> verify for tests/integration/scenarios/<name>; returns the results.

    `after_check` runs right after the check-mode run: the place to read the lab and assert nothing changed.
    """
    base = SCENARIOS / name
    converge, verify = base / "converge.yml", base / "verify.yml"
    syntax = subprocess.run(
        [ANSIBLE_PLAYBOOK, "--syntax-check", str(converge), "-i", str(inventory or ROOT / "inventories" / "lab")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections")},
        check=False,
    )
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    results = {}
    results["check"] = run_playbook(converge, inventory, check=True, diff=True, extra_vars=extra_vars)
    assert results["check"].rc == 0, results["check"].output[-4000:]
    if after_check is not None:
        after_check()
    results["converge"] = run_playbook(converge, inventory, diff=True, extra_vars=extra_vars)
    assert results["converge"].rc == 0, results["converge"].output[-4000:]
    results["idempotence"] = run_playbook(converge, inventory, extra_vars=extra_vars)
    assert results["idempotence"].rc == 0, results["idempotence"].output[-4000:]
    assert results["idempotence"].changed == 0, f"not idempotent: {results['idempotence'].changed_tasks()}"
    results["verify"] = run_playbook(verify, inventory, extra_vars=extra_vars)
    assert results["verify"].rc == 0, results["verify"].output[-4000:]
    return results
