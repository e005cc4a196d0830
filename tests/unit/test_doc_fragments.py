"""Shared option sets: each doc fragment and its argspec dict say the same, and the requirements fragment is in
step with requirements.txt and bindep.txt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.doc_fragments import (
    ca_file,
    kube_auth,
    registry_destination,
    requirements,
)
from ansible_collections.airgap.renku.plugins.module_utils.common.kube import KUBE_AUTH_ARGSPEC
from ansible_collections.airgap.renku.plugins.module_utils.common.options import CA_FILE_ARGSPEC
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    REGISTRY_DESTINATION_ARGSPEC,
    registry_destination_argspec,
)

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [
    (kube_auth.ModuleDocFragment.DOCUMENTATION, KUBE_AUTH_ARGSPEC),
    (ca_file.ModuleDocFragment.DOCUMENTATION, CA_FILE_ARGSPEC),
    (registry_destination.ModuleDocFragment.DOCUMENTATION, REGISTRY_DESTINATION_ARGSPEC),
]


@pytest.mark.parametrize(("documentation", "argspec"), PAIRS)
def test_fragment_documents_exactly_its_argspec(documentation, argspec):
    options = yaml.safe_load(documentation)["options"]
    assert sorted(options) == sorted(argspec)
    for name, spec in argspec.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("aliases", []) == spec.get("aliases", []), name
        assert options[name].get("default") == spec.get("default"), name
        assert options[name]["description"], name


def test_destination_password_is_never_logged():
    assert REGISTRY_DESTINATION_ARGSPEC["destination_password"]["no_log"] is True


def test_each_module_chooses_its_prefix_default():
    assert registry_destination_argspec("charts")["prefix"] == {"type": "str", "default": "charts"}
    assert "default" not in REGISTRY_DESTINATION_ARGSPEC["prefix"]


def fragment_requirements() -> list[str]:
    fragments = [getattr(requirements.ModuleDocFragment, n) for n in dir(requirements.ModuleDocFragment) if n.isupper()]
    fragments.append(kube_auth.ModuleDocFragment.DOCUMENTATION)
    return [line for text in fragments for line in yaml.safe_load(text).get("requirements", [])]


def test_python_requirements_match_requirements_txt():
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)>=(\S+)", line)
        if match:
            pinned[match.group(1).lower()] = match.group(2)
    documented = [re.match(r"^(\S+) >= (\S+) \(Python\)$", line) for line in fragment_requirements()]
    python = [match for match in documented if match]
    assert python
    for match in python:
        assert pinned.get(match.group(1).lower()) == match.group(2), match.group(0)


def test_programs_are_system_packages_or_helm():
    bindep = (ROOT / "bindep.txt").read_text()
    programs = [line.split()[0] for line in fragment_requirements() if "(program" in line]
    assert programs
    for program in programs:
        assert program == "helm" or re.search(rf"^{program}\s", bindep, re.M), program
