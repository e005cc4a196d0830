"""Every task of the playbooks, roles and scenarios passes its module only options the module documents.

ansible-lint's `args` rule is meant to check this, but the ansible-lint release in requirements-dev.txt reports no
unknown option at all (an `ansible.builtin.file` or `awx.awx.organization` task with a made-up option passes), so
the names are checked here against each module's documentation, doc fragments and aliases included, as ansible-doc
shows them. Values are not checked: most are templates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.playbook.block import Block
from ansible.playbook.task import Task

ROOT = Path(__file__).resolve().parents[2]
TASK_FILES = sorted(
    {
        ROOT / "site.yml",
        *ROOT.glob("playbooks/*.yml"),
        *ROOT.glob("roles/*/tasks/*.yml"),
        *ROOT.glob("roles/*/handlers/*.yml"),
        *(p for p in ROOT.glob("extensions/molecule/*/*.yml") if p.name != "molecule.yml"),
        *ROOT.glob("extensions/molecule/*/tasks/*.yml"),
    }
)
KEYWORDS = set(Task.fattributes) | set(Block.fattributes) | {"local_action", "action", "args", "notify", "listen"}
BLOCK_KEYS = ("block", "rescue", "always")
PLAY_TASK_KEYS = ("pre_tasks", "tasks", "post_tasks", "handlers")
# Modules whose dict arguments are variable names, not options.
FREE_KEYS = {"ansible.builtin.set_fact", "ansible.builtin.set_stats", "ansible.builtin.add_host"}


def tasks_in(items: list[Any]) -> Iterator[dict[str, Any]]:
    """Every task of a task list, blocks opened."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        if any(key in item for key in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                yield from tasks_in(item.get(key))
        else:
            yield item


def tasks_of_file(path: Path) -> Iterator[dict[str, Any]]:
    for item in yaml.safe_load(path.read_text()) or []:
        if isinstance(item, dict) and ("hosts" in item or "ansible.builtin.import_playbook" in item):
            for key in PLAY_TASK_KEYS:
                yield from tasks_in(item.get(key))
        else:
            yield from tasks_in([item])


def module_call(task: dict[str, Any]) -> tuple[str, Any] | None:
    names = [key for key in task if key not in KEYWORDS and not key.startswith("with_")]
    if len(names) != 1:
        return None
    return names[0], task[names[0]]


def documented_options(module: str) -> tuple[str, frozenset[str]]:
    """The module's FQCN and its option names with their aliases, as ansible-doc shows them."""
    fqcn, names = DOCUMENTED[module]
    return fqcn, frozenset(names)


def read_documentation(modules: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Run in a fresh interpreter (this file as a script): other tests import the collection's packages in ways
    that keep Ansible's collection loader from finding its modules in the test process."""
    from ansible.plugins.loader import fragment_loader, init_plugin_loader, module_loader
    from ansible.utils.plugin_docs import get_docstring

    init_plugin_loader([str(ROOT / "build" / "collections")])
    documented = {}
    for module in modules:
        found = module_loader.find_plugin_with_context(module)
        if not found.resolved:
            raise SystemExit(f"module {module} not found")
        doc = get_docstring(
            found.plugin_resolved_path,
            fragment_loader,
            collection_name=found.plugin_resolved_collection or None,
            is_module=True,
        )[0]
        names: set[str] = set()
        for name, spec in (doc.get("options") or {}).items():
            names.add(name)
            names.update(spec.get("aliases") or [])
        documented[module] = (found.resolved_fqcn, sorted(names))
    return documented


def calls() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in TASK_FILES:
        for task in tasks_of_file(path):
            call = module_call(task)
            if call is None:
                continue
            module, args = call
            options = dict(args) if isinstance(args, dict) else {}
            options.update(task.get("args") or {})
            yield f"{path.relative_to(ROOT)}: {task.get('name', module)}", module, options


CALLS = list(calls())
CHECKED_MODULES = [
    "ansible.builtin.file",
    "awx.awx.organization",
    "airgap.renku.kubeconfig_build",
    "kubernetes.core.k8s",
]


def documentation_in_fresh_interpreter(modules: list[str]) -> dict[str, tuple[str, list[str]]]:
    result = subprocess.run(
        [sys.executable, __file__, *modules], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout)


DOCUMENTED = (
    {}
    if __name__ == "__main__"
    else documentation_in_fresh_interpreter(sorted({call[1] for call in CALLS} | set(CHECKED_MODULES)))
)


def test_every_task_names_exactly_one_module():
    unclear = [(str(p), sorted(t)) for p in TASK_FILES for t in tasks_of_file(p) if module_call(t) is None]
    assert not unclear


def test_the_check_sees_the_awx_playbook_and_every_role():
    files = {call[0].split(":", 1)[0] for call in CALLS}
    assert "playbooks/awx_configure.yml" in files
    assert {Path(f).parts[1] for f in files if f.startswith("roles/")} == {p.name for p in (ROOT / "roles").iterdir()}


@pytest.mark.parametrize(("label", "module", "options"), CALLS, ids=[c[0] for c in CALLS])
def test_task_passes_only_documented_options(label, module, options):
    fqcn, documented = documented_options(module)
    if fqcn in FREE_KEYS or not options:
        return
    unknown = set(options) - documented
    assert not unknown, f"{label}: {fqcn} has no option {sorted(unknown)}"


def test_a_made_up_option_is_caught():
    for module in ("ansible.builtin.file", "awx.awx.organization", "airgap.renku.kubeconfig_build"):
        assert "made_up_option" not in documented_options(module)[1]
    assert "kubeconfig" in documented_options("kubernetes.core.k8s")[1]  # from a doc fragment


if __name__ == "__main__":
    print(json.dumps(read_documentation(sys.argv[1:])))
