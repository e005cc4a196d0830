"""A job as AWX hands it to ansible-runner, built from awx/objects.yml: the private data directory of one job template.

AWX launches a job template by writing a private data directory and calling ansible-runner on it:
`env/extravars` (the survey answers and AWX's job variables), `env/envvars`, `env/cmdline`, an inventory, and for
every credential what its type's injectors say: each `file` template rendered into a 0600 file under `env/`
(`{{ tower.filename }}` for a single `template`, `{{ tower.filename.<name> }}` for `template.<name>`), each `env`
template into an environment variable, and the `extra_vars` templates into a file of their own, every value marked
`!unsafe` so a password is never templated, given to ansible-playbook as `-e @<file>`. The templates are rendered in
Jinja's immutable sandbox with the credential's inputs (and `tower`) as the namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
OBJECTS_FILE = ROOT / "awx" / "objects.yml"
# AWX refuses these in an `env` injector (and any ANSIBLE_* name): they belong to the job, not to a credential.
ENV_BLOCKLIST = {"PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "JOB_ID", "INVENTORY_ID", "PROJECT_REVISION", "AWX_HOST"}
# Inventory variables that hold a secret by their name; AWX's inventory carries none of them.
SECRET_NAME = re.compile(r"(password|token|secret)$", re.I)


def load_objects(path: Path = OBJECTS_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def credential_type(objects: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in objects["credential_types"] if t["name"] == name)


def credential(objects: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in objects["credentials"] if c["name"] == name)


def job_template(objects: dict[str, Any], stage: str) -> dict[str, Any]:
    return next(t for t in objects["job_templates"] if t["stage"] == stage)


def injected_variables(objects: dict[str, Any]) -> set[str]:
    """Every variable a credential type's injectors set as an extra var."""
    return {name for ctype in objects["credential_types"] for name in ctype["injectors"].get("extra_vars", {})}


def secret_injected_variables(objects: dict[str, Any]) -> set[str]:
    """The extra vars a credential type fills from a secret input (or a file made from one): AWX's inventory holds
    none of them. The others (user names, the CA file's path) may have a value in the inventory too."""
    env = ImmutableSandboxedEnvironment()
    found = set()
    for ctype in objects["credential_types"]:
        secret = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
        secret_files = {
            label for label, tmpl in ctype["injectors"].get("file", {}).items() if undeclared(env, tmpl) & secret
        }
        for name, template in ctype["injectors"].get("extra_vars", {}).items():
            if undeclared(env, template) & secret or (secret_files and "tower" in undeclared(env, template)):
                found.add(name)
    return found


def undeclared(env: ImmutableSandboxedEnvironment, template: str) -> set[str]:
    return meta.find_undeclared_variables(env.parse(template))


def survey_extra_vars(template: dict[str, Any]) -> dict[str, Any]:
    """The survey's defaults, typed as AWX hands them over (integers as integers, choices as strings)."""
    answers: dict[str, Any] = {}
    for question in template["survey"]:
        default = question["default"]
        answers[question["variable"]] = int(default) if question["type"] == "integer" else str(default)
    return answers


class TowerNamespace:
    """The `tower` object of the injector templates (AWX's own name for it)."""

    filename: Any


@dataclass
class Injection:
    env: dict[str, str] = field(default_factory=dict)
    extra_vars_files: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _write_private(directory: Path, text: str, mode: int) -> Path:
    handle, name = tempfile.mkstemp(dir=directory)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(name, mode)
    return Path(name)


class UnsafeText(str):
    """A string ansible-playbook must not template: dumped with the `!unsafe` tag."""


def _unsafe_representer(dumper: yaml.SafeDumper, value: UnsafeText) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value))


class UnsafeDumper(yaml.SafeDumper):
    pass


UnsafeDumper.add_representer(UnsafeText, _unsafe_representer)


def _render_tree(env: ImmutableSandboxedEnvironment, node: Any, namespace: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {_render_tree(env, k, namespace): _render_tree(env, v, namespace) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_tree(env, item, namespace) for item in node]
    return UnsafeText(env.from_string(node).render(**namespace))


def injector_namespace(ctype: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs given (empty strings left out, as AWX does), booleans not given as False, and `tower`."""
    namespace: dict[str, Any] = {"tower": TowerNamespace()}
    for name, value in inputs.items():
        if isinstance(value, bool) or len(value):
            namespace[name] = value
    for spec in ctype["inputs"].get("fields", []):
        if spec.get("type") == "boolean" and spec["id"] not in inputs:
            namespace[spec["id"]] = False
    return namespace


def inject_credential(ctype: dict[str, Any], inputs: dict[str, Any], env_dir: Path) -> Injection:
    """What AWX does for one credential of type `ctype` in a job whose private data directory has `env_dir`."""
    sandbox = ImmutableSandboxedEnvironment()
    namespace = injector_namespace(ctype, inputs)
    tower = namespace["tower"]
    injection = Injection()
    for label, template in ctype["injectors"].get("file", {}).items():
        path = _write_private(env_dir, sandbox.from_string(template).render(**namespace), stat.S_IRUSR | stat.S_IWUSR)
        injection.files.append(path)
        if "." not in label:
            tower.filename = str(path)
            continue
        if not hasattr(tower, "filename"):
            tower.filename = TowerNamespace()
        setattr(tower.filename, label.split(".", 1)[1], str(path))
    for name, template in ctype["injectors"].get("env", {}).items():
        if name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            raise ValueError(f"{ctype['name']}: AWX does not let a credential set {name}")
        injection.env[name] = sandbox.from_string(template).render(**namespace)
    extra_vars = _render_tree(sandbox, ctype["injectors"].get("extra_vars", {}), namespace)
    if extra_vars:
        text = yaml.dump(extra_vars, Dumper=UnsafeDumper, default_flow_style=False)
        injection.extra_vars_files.append(_write_private(env_dir, text, stat.S_IRUSR))
    return injection


def lab_inputs(spec: dict[str, dict[str, str]], lab_env: dict[str, str]) -> dict[str, str]:
    """A credential's inputs as the lab holds them: `{env: KEY}` is a lab env value, `{file: KEY}` a file's content."""
    inputs = {}
    for name, source in spec.items():
        inputs[name] = Path(lab_env[source["file"]]).read_text() if "file" in source else lab_env[source["env"]]
    return inputs


def copy_inventory(source: Path, destination: Path, dropped: set[str]) -> None:
    """The inventory as AWX's inventory source imports it, without the variables credentials fill from secrets and
    without any secret value (AWX's inventory carries none: they come from credentials). A variable that only refers
    to another (`mirror_registry_password: "{{ lab_registry_internal_password }}"`) stays."""
    shutil.copytree(source, destination)
    for path in (destination / "group_vars").rglob("*.yml"):
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            continue
        kept = {k: v for k, v in data.items() if k not in dropped and not is_secret_value(k, v)}
        if kept != data:
            path.write_text(yaml.safe_dump(kept, default_flow_style=False))


def is_secret_value(name: str, value: Any) -> bool:
    return bool(SECRET_NAME.search(name)) and isinstance(value, str) and "{{" not in value and bool(value)


@dataclass(frozen=True)
class JobDirectory:
    private_data_dir: Path
    playbook: str
    inventory: Path
    injected_files: tuple[Path, ...]  # credential files and credential extra-vars files: secrets by design


def awx_job_vars(objects: dict[str, Any], template: dict[str, Any], job_id: int) -> dict[str, Any]:
    """The variables AWX adds to every job's extra vars."""
    return {
        "awx_job_id": job_id,
        "awx_job_launch_type": "manual",
        "awx_job_template_name": template["name"],
        "awx_inventory_name": objects["inventory"]["name"],
        "awx_project_scm_branch": objects["project"]["scm_branch"],
    }


def build_job_directory(
    objects: dict[str, Any],
    stage: str,
    private_data_dir: Path,
    credential_inputs: dict[str, dict[str, Any]],
    job_env: dict[str, str],
    job_id: int = 1,
) -> JobDirectory:
    """The private data directory AWX writes for the job template of `stage`, with the survey's defaults."""
    template = job_template(objects, stage)
    env_dir = private_data_dir / "env"
    env_dir.mkdir(parents=True)
    envvars = dict(job_env)
    cmdline: list[str] = []
    injected: list[Path] = []
    for name in template["credentials"]:
        cred = credential(objects, name)
        injection = inject_credential(
            credential_type(objects, cred["credential_type"]), credential_inputs[name], env_dir
        )
        envvars.update(injection.env)
        for path in injection.extra_vars_files:
            cmdline += ["-e", f"@{path}"]
        injected += injection.files + injection.extra_vars_files
    extravars = {**awx_job_vars(objects, template, job_id), **survey_extra_vars(template)}
    (env_dir / "extravars").write_text(yaml.safe_dump(extravars))
    (env_dir / "envvars").write_text(yaml.safe_dump(envvars))
    (env_dir / "cmdline").write_text(" ".join(cmdline))
    inventory = private_data_dir / "inventory"
    copy_inventory(ROOT / objects["inventory"]["source"]["source_path"], inventory, secret_injected_variables(objects))
    return JobDirectory(private_data_dir, template["playbook"], inventory, tuple(injected))
