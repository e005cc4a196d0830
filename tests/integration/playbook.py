"""Run ansible-playbook against the lab and read the outcome.

The roles' scenarios are molecule's (extensions/molecule/<name>/, run by tests/integration/test_molecule.py);
`converge` runs a scenario's converge playbook with a test's own extra vars, for tests that assert on details.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "extensions" / "molecule"
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


def converge(
    name: str, extra_vars: dict | None = None, inventory: str | Path | None = None, runs: int = 1
) -> dict[str, PlaybookResult]:
    """Run molecule scenario `name`'s converge.yml `runs` times (1 or 2); returns {"converge": ..., "rerun": ...}.

    Molecule runs each scenario's whole sequence (extensions/molecule/); the tests here converge a scenario
    with their own extra vars to assert on details of what it did, and of what a second run did.
    """
    playbook = SCENARIOS / name / "converge.yml"
    results: dict[str, PlaybookResult] = {}
    for label in ("converge", "rerun")[:runs]:
        results[label] = run_playbook(playbook, inventory, diff=label == "converge", extra_vars=extra_vars)
        assert results[label].rc == 0, results[label].output[-4000:]
    return results
