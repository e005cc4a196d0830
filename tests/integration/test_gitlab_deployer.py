"""gitlab_deployer role on the lab: the kubeconfig deploys into its namespace and is Forbidden in kube-system."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from playbook import SCENARIOS, converge, run_playbook

NS = "itest-gitlab-deployer"
CONVERGE = SCENARIOS / "gitlab_deployer" / "converge.yml"

pytestmark = pytest.mark.lab


def _core(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(kubeconfig))


def _namespace_gone(kubeconfig: str) -> bool:
    """Gone, not merely Terminating: `state: absent` returns once the namespace controller has removed it."""
    try:
        _core(kubeconfig).read_namespace(NS)
    except ApiException as exc:
        return exc.status == 404
    return False


def _deployment(name: str, namespace: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "app:1"}]}},
        },
    }


def _forbidden(call, *args, **kwargs) -> None:
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status == 403, info.value


def test_gitlab_deployer_on_the_lab(lab_env):
    admin = lab_env["KUBECONFIG_LOCAL"]
    path = Path(lab_env["LAB_STATE"]) / "itest-gitlab-deployer" / "deployer.kubeconfig"
    run_playbook(CONVERGE, extra_vars={"itest_state": "absent"})

    check = run_playbook(CONVERGE, check=True, diff=True)
    assert check.rc == 0, check.output[-3000:]
    assert _namespace_gone(admin), "check mode created the namespace"
    assert not path.exists(), "check mode wrote the kubeconfig"

    converge("gitlab_deployer")

    api = config.new_client_from_config(str(path))
    apps, core, batch = client.AppsV1Api(api), client.CoreV1Api(api), client.BatchV1Api(api)
    created = apps.create_namespaced_deployment(NS, _deployment("itest-app", NS))
    assert created.metadata.namespace == NS
    assert apps.read_namespaced_deployment("itest-app", NS).metadata.uid == created.metadata.uid
    _forbidden(core.list_namespaced_pod, "kube-system")
    _forbidden(apps.list_namespaced_deployment, "kube-system")
    _forbidden(apps.create_namespaced_deployment, "kube-system", _deployment("itest-escape", "kube-system"))
    _forbidden(batch.list_namespaced_job, "kube-system")
    _forbidden(batch.list_namespaced_cron_job, "kube-system")
    _forbidden(core.list_namespace)

    absent = run_playbook(CONVERGE, extra_vars={"itest_state": "absent"})
    assert absent.rc == 0, absent.output[-3000:]
    assert _namespace_gone(admin)
    assert not path.exists()
    assert not Path(str(path) + ".b64").exists()


def test_a_namespace_still_being_deleted_is_waited_for(lab_env):
    """A deployer namespace deleted a moment ago is Terminating and takes no new content (the API server answers
    403). A check run reports it as to be created and changes nothing; a real run waits until it is gone and
    creates it again, instead of failing with a misleading RBAC error."""
    admin = lab_env["KUBECONFIG_LOCAL"]
    core = _core(admin)
    converge("gitlab_deployer")
    uid = core.read_namespace(NS).metadata.uid
    hold = {"metadata": {"name": "itest-hold", "finalizers": ["airgap.renku/itest-hold"]}}
    core.create_namespaced_config_map(NS, hold)

    def let_go() -> None:
        with contextlib.suppress(ApiException):
            core.patch_namespaced_config_map("itest-hold", NS, {"metadata": {"finalizers": None}})

    release = threading.Timer(5, let_go)
    try:
        core.delete_namespace(NS)
        assert core.read_namespace(NS).status.phase == "Terminating"

        check = run_playbook(CONVERGE, check=True, diff=True)
        assert check.rc == 0, check.output[-3000:]
        assert check.changed > 0 and core.read_namespace(NS).metadata.uid == uid

        started = time.monotonic()
        release.start()
        result = run_playbook(CONVERGE)
    finally:
        release.cancel()
        let_go()  # a failed assertion must not leave the namespace stuck
    assert result.rc == 0, result.output[-3000:]
    assert time.monotonic() - started >= 5, "the run did not wait for the namespace to go"
    again = core.read_namespace(NS)
    assert again.metadata.uid != uid and again.status.phase == "Active"
    assert (Path(lab_env["LAB_STATE"]) / "itest-gitlab-deployer" / "deployer.kubeconfig").exists()
