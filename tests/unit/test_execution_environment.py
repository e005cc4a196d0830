"""`ansible-builder create` makes the build context from meta/execution-environment.yml offline, and the context
installs exactly requirements.txt, bindep.txt and galaxy.yml's collection dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EE_FILE = ROOT / "meta" / "execution-environment.yml"


def requirement_lines(path: Path) -> list[str]:
    """The lines that name a requirement: no comments, no blank lines, inline comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ee") / "context"
    result = subprocess.run(
        [sys.executable, "-m", "ansible_builder", "create", "-f", str(EE_FILE), "-c", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def test_python_requirements_are_requirements_txt(context):
    assert requirement_lines(context / "_build" / "requirements.txt") == requirement_lines(ROOT / "requirements.txt")


def test_system_requirements_are_bindep_txt(context):
    assert requirement_lines(context / "_build" / "bindep.txt") == requirement_lines(ROOT / "bindep.txt")


def test_collections_are_galaxy_yml_dependencies(context):
    collections = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert {c["name"]: c.get("version", "*") for c in collections} == galaxy["dependencies"]


def test_containerfile_installs_the_context(context):
    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()
    for step in (
        "COPY _build/requirements.txt",
        "COPY _build/bindep.txt",
        "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml",
        "ansible-core>=2.19.0",  # README: ansible-core 2.19
        "ansible-runner>=2.4.0",  # what AWX starts the job with
    ):
        assert step in containerfile, step
