"""awx/objects.yml is consistent with the repository, and credentials are injected the way AWX injects them."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import yaml
from awx_jobs import (
    ROOT,
    build_job_directory,
    credential_type,
    inject_credential,
    injected_variables,
    is_secret_value,
    load_objects,
    secret_injected_variables,
    survey_extra_vars,
)
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

OBJECTS = load_objects()
SURVEY_TYPES = {"text", "textarea", "integer", "float", "multiplechoice", "multiselect"}


def site_playbooks() -> list[str]:
    plays = yaml.safe_load((ROOT / "site.yml").read_text())
    return [play["ansible.builtin.import_playbook"] for play in plays]


def test_one_job_template_per_stage_in_site_yml_order():
    assert [t["playbook"] for t in OBJECTS["job_templates"]] == site_playbooks()
    assert all(Path(t["playbook"]).stem == t["stage"] for t in OBJECTS["job_templates"])
    assert len({t["name"] for t in OBJECTS["job_templates"]}) == len(OBJECTS["job_templates"])


def test_job_templates_name_existing_credentials_one_per_type():
    names = {c["name"]: c["credential_type"] for c in OBJECTS["credentials"]}
    types = {t["name"] for t in OBJECTS["credential_types"]}
    assert set(names.values()) <= types
    for template in OBJECTS["job_templates"]:
        assert set(template["credentials"]) <= names.keys(), template["name"]
        used_types = [names[c] for c in template["credentials"]]
        assert len(used_types) == len(set(used_types)), f"{template['name']}: AWX takes one credential per type"


def test_surveys_hold_choices_never_secrets():
    injected = injected_variables(OBJECTS)
    for template in OBJECTS["job_templates"]:
        for question in template["survey"]:
            assert question["type"] in SURVEY_TYPES, question  # no `password` question
            assert question["variable"] not in injected
            assert not re.search(r"password|token|secret|kubeconfig", question["variable"], re.I)
            if question["type"] == "multiplechoice":
                assert question["default"] in question["choices"]


def test_survey_defaults_are_typed_as_awx_hands_them_over():
    assert survey_extra_vars(next(t for t in OBJECTS["job_templates"] if t["stage"] == "baremetal")) == {
        "haproxy_bootstrap_enabled": 1
    }
    assert survey_extra_vars(next(t for t in OBJECTS["job_templates"] if t["stage"] == "mirror")) == {
        "mirror_mode": "direct"
    }


@pytest.mark.parametrize("ctype", OBJECTS["credential_types"], ids=lambda t: t["name"])
def test_injectors_refer_only_to_declared_fields(ctype):
    fields = {f["id"] for f in ctype["inputs"]["fields"]}
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind in ("file", "env", "extra_vars"):
        for template in ctype["injectors"].get(kind, {}).values():
            assert meta.find_undeclared_variables(env.parse(template)) <= fields | {"tower"}, template
    assert set(ctype["inputs"]["required"]) <= fields
    secret_fields = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
    for template in ctype["injectors"].get("env", {}).values():
        assert not meta.find_undeclared_variables(env.parse(template)) & secret_fields, "a secret in the environment"


@pytest.mark.parametrize("cred", OBJECTS["credentials"], ids=lambda c: c["name"])
def test_lab_inputs_cover_every_field(cred):
    fields = {f["id"] for f in credential_type(OBJECTS, cred["credential_type"])["inputs"]["fields"]}
    assert set(cred["lab_inputs"]) == fields


def test_file_injector_writes_a_private_file_and_names_it(tmp_path):
    ctype = credential_type(OBJECTS, "airgap.renku kubeconfig local cluster")
    injection = inject_credential(ctype, {"kubeconfig": "apiVersion: v1\nkind: Config\n"}, tmp_path)
    [path] = injection.files
    assert path.parent == tmp_path and path.read_text() == "apiVersion: v1\nkind: Config\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [extra] = injection.extra_vars_files
    assert stat.S_IMODE(extra.stat().st_mode) == 0o400
    assert yaml.safe_load(extra.read_text().replace("!unsafe ", "")) == {"lab_kubeconfig_local": str(path)}


def test_extra_vars_are_unsafe_so_a_password_is_never_templated(tmp_path):
    ctype = credential_type(OBJECTS, "airgap.renku internal registry")
    injection = inject_credential(ctype, {"username": "pusher", "password": "p{{ lookup('env','HOME') }}w"}, tmp_path)
    text = injection.extra_vars_files[0].read_text()
    # keys and values alike, as AWX's safe_dump writes them
    assert "!unsafe 'lab_registry_internal_password': !unsafe 'p{{ lookup(''env'',''HOME'') }}w'" in text


def test_multi_file_injector_names_each_file(tmp_path):
    ctype = {
        "name": "two files",
        "inputs": {"fields": [{"id": "a", "type": "string"}, {"id": "b", "type": "string"}]},
        "injectors": {
            "file": {"template.first": "{{ a }}", "template.second": "{{ b }}"},
            "env": {"FIRST": "{{ tower.filename.first }}", "SECOND": "{{ tower.filename.second }}"},
        },
    }
    injection = inject_credential(ctype, {"a": "1", "b": "2"}, tmp_path)
    assert Path(injection.env["FIRST"]).read_text() == "1" and Path(injection.env["SECOND"]).read_text() == "2"


def test_an_ansible_setting_is_not_a_credential_injection(tmp_path):
    ctype = {"name": "bad", "inputs": {"fields": []}, "injectors": {"env": {"ANSIBLE_CONFIG": "/tmp/x"}}}
    with pytest.raises(ValueError, match="ANSIBLE_CONFIG"):
        inject_credential(ctype, {}, tmp_path)


def test_job_directory_has_survey_defaults_and_credentials_but_no_inventory_secret(tmp_path):
    inputs = {c["name"]: {name: f"value-of-{name}" for name in c["lab_inputs"]} for c in OBJECTS["credentials"]}
    job = build_job_directory(OBJECTS, "mirror", tmp_path / "job", inputs, {"TMPDIR": str(tmp_path)})
    env = tmp_path / "job" / "env"
    assert yaml.safe_load((env / "extravars").read_text())["mirror_mode"] == "direct"
    cmdline = (env / "cmdline").read_text().split()
    assert cmdline.count("-e") == 4  # one extra-vars file per credential: CA, registry, git, local kubeconfig
    assert "value-of-password" not in (env / "extravars").read_text() + (env / "envvars").read_text()
    assert all(p.parent == env for p in job.injected_files)
    for path in (job.inventory / "group_vars").rglob("*.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        assert not secret_injected_variables(OBJECTS) & data.keys(), path
        assert not [k for k, v in data.items() if is_secret_value(k, v)], path


def test_galaxy_requirements_carry_awx_and_the_collection_dependencies():
    requirements = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]
    names = {r["name"] for r in requirements}
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert set(galaxy["dependencies"]) | {"awx.awx"} == names


def test_the_inventory_keeps_no_variable_a_secret_fills():
    assert secret_injected_variables(OBJECTS) == {
        "lab_registry_internal_password",
        "lab_git_password",
        "lab_kubeconfig_local",
        "lab_kubeconfig_remote",
        "lab_keycloak_renku_admin_password",
        "lab_keycloak_admin_password",
    }
