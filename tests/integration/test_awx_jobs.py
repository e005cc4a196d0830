"""Every job template of awx/objects.yml run the way AWX runs it: ansible-runner on a private data directory.

For a job template the test writes what AWX writes (tests/unit/awx_jobs.py): the survey's defaults and AWX's job
variables in `env/extravars`, each credential injected as its type's injectors say (the CA and kubeconfigs in 0600
files under `env/`, the variables in `-e @` files of their own, every value `!unsafe`), and the inventory from its
source in the project without any secret value and without the variables credentials fill from secrets (passwords,
kubeconfig files), so a job template missing a credential fails on an undefined variable. The credentials' inputs
are the lab's (`lab_inputs`). ansible-runner runs the stage's playbook from the repository (the project) with the
lab's collection link standing for the execution environment's collections.

Asserted from the runner's results: the job succeeds; a second job reports changed=0; no secret value of the lab
(test_no_secrets.all_secrets: every password and token of the lab env, every credential in the clusters' Secrets, the
lab's kubeconfigs) and no JWT appears in the runner's stdout, job events and other artifacts, in the job's own extra
vars, environment and inventory, in the job's temporary directory, or in any file the jobs wrote in the repository
or where tools keep state in the home directory. The credential files are left out of the search: they hold the
secrets by design, and AWX deletes them with the private data directory.

Every stage runs twice, measured on the lab (2 cores, lab converged; both jobs of a stage, over three runs of the test,
the slower ones with other lab tests running): preflight 8-17 s, bare metal 47-86 s, mirror 14 s (on a mirrored
lab it copies nothing), platform 42-64 s, remote cluster 34-57 s, GitLab deployers 10-16 s; the whole
file 2.5-4.5 minutes.

These stages change the lab's shared objects (DNS, HAProxy, the Renku release, ServiceAccounts, the remote-cluster
registration), so the test runs alone after the parallel tests (`make integration`); a pytest-xdist worker skips it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_no_secrets import all_secrets, files_under, home_files, scan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from awx_jobs import (
    JobDirectory,
    build_job_directory,
    is_secret_value,
    lab_inputs,
    load_objects,
    secret_injected_variables,
)

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = load_objects()
STAGES = [t["stage"] for t in OBJECTS["job_templates"]]

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        bool(os.environ.get("PYTEST_XDIST_WORKER")),
        reason="the stages change the lab's shared objects: runs alone, after the parallel tests (make integration)",
    ),
]


@dataclass(frozen=True)
class JobResult:
    rc: int
    stdout: str
    changed: int
    changed_tasks: list[str]
    artifacts: Path
    seconds: float


@pytest.fixture(scope="module")
def credential_inputs(lab_env) -> dict[str, dict[str, str]]:
    return {c["name"]: lab_inputs(c["lab_inputs"], lab_env) for c in OBJECTS["credentials"]}


def job_env(private_data_dir: Path) -> dict[str, str]:
    """The environment of the job: the execution environment's tools and collections, a private temporary directory."""
    tmp = private_data_dir / "tmp"
    tmp.mkdir(parents=True)
    return {
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "TMPDIR": str(tmp),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
    }


def prepare(stage: str, private_data_dir: Path, credential_inputs: dict, job_id: int) -> JobDirectory:
    private_data_dir.mkdir(parents=True)
    env = job_env(private_data_dir)
    return build_job_directory(OBJECTS, stage, private_data_dir, credential_inputs, env, job_id)


def changed_task_names(events: list[dict]) -> list[str]:
    return [
        e["event_data"].get("task", "?")
        for e in events
        if e.get("event") == "runner_on_ok" and (e["event_data"].get("res") or {}).get("changed")
    ]


def run_job(job: JobDirectory) -> JobResult:
    import ansible_runner

    started = time.time()
    runner = ansible_runner.run(
        private_data_dir=str(job.private_data_dir),
        project_dir=str(ROOT),
        playbook=job.playbook,
        inventory=str(job.inventory),
        quiet=True,
    )
    events = list(runner.events)
    changed = sum((runner.stats or {}).get("changed", {}).values())
    return JobResult(
        rc=runner.rc,
        stdout=runner.stdout.read(),
        changed=changed,
        changed_tasks=changed_task_names(events),
        artifacts=Path(runner.config.artifact_dir),
        seconds=time.time() - started,
    )


def job_files(job: JobDirectory) -> list[Path]:
    """Every file of the private data directory but the credential files (artifacts, env, inventory, tmp)."""
    injected = set(job.injected_files)
    return [p for p in files_under(job.private_data_dir, 0) if p not in injected]


def assert_no_inventory_secret(job: JobDirectory) -> None:
    for path in (job.inventory / "group_vars").rglob("*.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        assert not secret_injected_variables(OBJECTS) & data.keys(), path
        assert not [k for k, v in data.items() if is_secret_value(k, v)], path


@pytest.mark.parametrize("stage", STAGES)
def test_job_template_runs_as_awx_runs_it(stage, lab_env, credential_inputs, tmp_path):
    started = time.time()
    first_job = prepare(stage, tmp_path / "job-1", credential_inputs, 1)
    assert_no_inventory_secret(first_job)
    first = run_job(first_job)
    assert first.rc == 0, first.stdout[-4000:]
    second_job = prepare(stage, tmp_path / "job-2", credential_inputs, 2)
    second = run_job(second_job)
    assert second.rc == 0, second.stdout[-4000:]
    assert second.changed == 0, f"second run changed: {second.changed_tasks}"
    assert (second.artifacts / "stdout").exists() and any((second.artifacts / "job_events").iterdir())

    secrets = all_secrets(lab_env)
    written = [*job_files(first_job), *job_files(second_job), *files_under(ROOT, started), *home_files(started)]
    hits = scan(dict.fromkeys(written), secrets)
    if second_job.injected_files:  # the search finds the secrets where they are by design
        assert scan(second_job.injected_files, secrets)
    print(
        f"{stage}: first job {first.seconds:.0f}s (changed: {first.changed_tasks}), second {second.seconds:.0f}s; "
        f"{len(secrets)} secret values searched in {len(set(written))} files"
    )
    assert not hits, "secrets in the jobs' output or files:\n" + "\n".join(map(str, hits[:200]))
