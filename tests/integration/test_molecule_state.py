"""The molecule scenarios' check step, proven able to see a change.

Every scenario in extensions/molecule/ reads its part of the lab before check mode (shared/state_before.yml)
and compares after it (shared/state_compare.yml). These tests run those two playbooks exactly as molecule does
(the same environment variables) around a change made on purpose, against a scope of their own, and assert that
the comparison fails naming what changed, and without printing a Secret's value.
"""

from __future__ import annotations

import base64
import contextlib
import uuid

import pytest
import yaml
from kubernetes import client, config
from playbook import ROOT, PlaybookResult, run_playbook

SHARED = ROOT / "extensions" / "molecule" / "shared"

pytestmark = pytest.mark.lab


@pytest.fixture
def probe(lab_env, tmp_path):
    """A scenario directory watching a namespace and a directory of its own; yields what to change."""
    namespace = f"molecule-probe-{uuid.uuid4().hex[:6]}"
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "config.txt").write_text("one\n")
    scenario = tmp_path / "scenario"
    (scenario / "vars").mkdir(parents=True)
    scope = {
        "molecule_state_scope": {
            "kube": [{"name": "local", "kubeconfig": "{{ lab_kubeconfig_local }}", "namespaces": [namespace]}],
            "files": [str(watched)],
        }
    }
    (scenario / "vars" / "state.yml").write_text(yaml.safe_dump(scope))
    (tmp_path / "ephemeral").mkdir()
    core = client.CoreV1Api(config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"]))
    core.create_namespace({"metadata": {"name": namespace}})
    env = {"MOLECULE_SCENARIO_DIRECTORY": str(scenario), "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "ephemeral")}
    try:
        yield {"core": core, "namespace": namespace, "watched": watched, "env": env}
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(namespace)


def step(probe: dict, name: str) -> PlaybookResult:
    return run_playbook(SHARED / f"state_{name}.yml", env=probe["env"])


def test_nothing_changed_passes(probe):
    assert step(probe, "before").rc == 0
    after = step(probe, "compare")
    assert after.rc == 0, after.output[-3000:]
    assert after.task_results("Everything is as it was before check mode")[0]["msg"].endswith("unchanged")


def test_a_new_object_and_a_changed_file_fail_by_name(probe):
    assert step(probe, "before").rc == 0
    probe["core"].create_namespaced_config_map(probe["namespace"], {"metadata": {"name": "added"}, "data": {"a": "b"}})
    (probe["watched"] / "config.txt").write_text("two\n")
    after = step(probe, "compare")
    assert after.rc != 0
    message = after.task_results("Everything is as it was before check mode")[0]["msg"]
    assert f"kube:local:{probe['namespace']}/core/ConfigMap/added" in message, message
    assert f"file:{probe['watched'] / 'config.txt'}" in message, message


def test_a_changed_secret_is_named_not_printed(probe):
    core, namespace = probe["core"], probe["namespace"]
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "first-pw-1"}})
    assert step(probe, "before").rc == 0
    secret = f"second-pw-{uuid.uuid4().hex}"
    core.patch_namespaced_secret("creds", namespace, {"data": {"password": base64.b64encode(secret.encode()).decode()}})
    after = step(probe, "compare")
    assert after.rc != 0
    assert f"kube:local:{namespace}/core/Secret/creds" in after.output
    assert secret not in after.output and base64.b64encode(secret.encode()).decode() not in after.output


def test_a_status_update_by_a_controller_is_not_a_change(probe):
    """kwok and the controllers keep writing status; the fingerprint leaves status out."""
    core, namespace = probe["core"], probe["namespace"]
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}], "type": "ClusterIP"}}
    )
    assert step(probe, "before").rc == 0
    core.patch_namespaced_service_status(
        "svc",
        namespace,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Probe",
                        "status": "True",
                        "reason": "Test",
                        "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        },
    )
    after = step(probe, "compare")
    assert after.rc == 0, after.output[-3000:]
