"""remote_cluster_sa and kubeconfig_build against the lab's remote API server (real objects, real reviews)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from playbook import run_playbook

NS = "itest-kubeconfig"
pytestmark = pytest.mark.lab


def playbook(tmp_path: Path, tasks: list[dict]) -> Path:
    path = tmp_path / f"play-{len(list(tmp_path.glob('play-*')))}.yml"
    path.write_text(yaml.safe_dump([{"hosts": "controller", "gather_facts": False, "tasks": tasks}]))
    return path


def sa_task(state: str = "present", **extra) -> dict:
    args = {"kubeconfig": "{{ lab_kubeconfig_remote }}", "namespace": NS, "name": "itest-sa", "state": state}
    return {"name": "sa", "airgap.renku.remote_cluster_sa": {**args, **extra}, "register": "sa"}


def build_task(path: str, **extra) -> dict:
    args = {
        "server": "{{ sa.server }}",
        "ca_data": "{{ sa.ca_data }}",
        "token": "{{ sa.token }}",
        "namespace": NS,
        "path": path,
        "verify": True,
        "verify_checks": [
            {"verb": "list", "resource": "pods", "namespace": NS, "expect": "allowed"},
            {
                "verb": "create",
                "resource": "amaltheasessions",
                "group": "amalthea.dev",
                "namespace": NS,
                "expect": "allowed",
            },
            {"verb": "list", "resource": "pods", "namespace": "kube-system", "expect": "denied"},
        ],
    }
    return {"name": "build", "airgap.renku.kubeconfig_build": {**args, **extra}, "register": "kc"}


def results(run, name: str) -> dict:
    found = run.task_results(name)
    assert found, run.output[-3000:]
    return found[0]


def namespace_exists(api: client.ApiClient) -> bool:
    try:
        return client.CoreV1Api(api).read_namespace(NS).status.phase == "Active"
    except ApiException as exc:
        return exc.status != 404


def test_service_account_kubeconfig_lifecycle(lab_env, tmp_path):
    admin = config.new_client_from_config(lab_env["KUBECONFIG_REMOTE"])
    kc_path = tmp_path / "out" / "remote.kubeconfig"
    kc_path.parent.mkdir()
    run_playbook(playbook(tmp_path, [sa_task("absent")]))

    check = run_playbook(playbook(tmp_path, [sa_task()]), check=True, diff=True)
    assert check.rc == 0, check.output[-3000:]
    assert results(check, "sa")["changed"]
    assert "create Secret/itest-sa-token" in results(check, "sa")["actions"]
    assert not namespace_exists(admin), "check mode created the namespace"

    tasks = [sa_task(), build_task(str(kc_path), return_base64=True)]
    first = run_playbook(playbook(tmp_path, tasks), diff=True)
    assert first.rc == 0, first.output[-3000:]
    sa = results(first, "sa")
    assert sa["actions"][-1] == "create Secret/itest-sa-token"  # the token Secret after its ServiceAccount
    built = results(first, "build")
    assert built["changed"] and built["access"]["unexpected"] == []
    assert "list pods in kube-system" in built["access"]["denied"]
    assert stat.S_IMODE(kc_path.stat().st_mode) == 0o600
    assert base64.b64decode(built["kubeconfig_base64"]).decode() == kc_path.read_text()
    token = yaml.safe_load(kc_path.read_text())["users"][0]["user"]["token"]
    # kubeconfig_build never shows the token: not in its invocation, diff or result (the sa task shows it
    # because this test does not set no_log on it, as a playbook must)
    assert token not in json.dumps(built), "kubeconfig_build leaked the token"
    assert "<masked>" in json.dumps(built["diff"])

    # the Role carries the reference rules, the Secret is a filled service-account token
    role = client.RbacAuthorizationV1Api(admin).read_namespaced_role("itest-sa", NS)
    assert any("amaltheasessions" in (r.resources or []) for r in role.rules)
    secret = client.CoreV1Api(admin).read_namespaced_secret("itest-sa-token", NS)
    assert secret.type == "kubernetes.io/service-account-token"
    assert base64.b64decode(secret.data["token"]).decode() == token

    second = run_playbook(playbook(tmp_path, tasks))
    assert second.rc == 0 and second.changed == 0, second.changed_tasks()

    # bounded token and another CA for the kubeconfig (a load balancer's site CA)
    req = run_playbook(
        playbook(
            tmp_path,
            [
                sa_task(
                    token_mode="request",
                    token_duration=600,
                    server="https://lb.itest.lab:6443",
                    server_ca_file=lab_env["LAB_CA"],
                )
            ],
        )
    )
    assert req.rc == 0, req.output[-3000:]
    requested = results(req, "sa")
    assert requested["token_expiration"]
    assert requested["server"] == "https://lb.itest.lab:6443"
    assert requested["ca_pem"] == Path(lab_env["LAB_CA"]).read_text()

    # a wrong token is reported as such by verify
    wrong = run_playbook(
        playbook(tmp_path, [sa_task(), build_task(str(tmp_path / "wrong.kubeconfig"), token="not-a-token")])
    )
    assert wrong.rc != 0
    assert "401" in json.dumps(results(wrong, "build"))

    gone = run_playbook(playbook(tmp_path, [sa_task("absent")]))
    assert gone.rc == 0, gone.output[-3000:]
    assert "delete Namespace/itest-kubeconfig" in results(gone, "sa")["actions"]
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(admin).read_namespaced_service_account("itest-sa", NS)
    assert missing.value.status == 404
