"""The lab is real: API servers with RBAC and a token controller, Helm, registries with TLS and auth."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from kubernetes import client, config
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[2]


def _session(ca: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the machine's REQUESTS_CA_BUNDLE must not replace the lab CA
    session.verify = ca
    return session


def _api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(kubeconfig)


@pytest.mark.parametrize("which", ["KUBECONFIG_LOCAL", "KUBECONFIG_REMOTE"])
def test_apiserver_readyz_over_verified_tls(lab_env, which):
    server = client.CoreV1Api(_api(lab_env[which])).api_client.configuration.host
    resp = _session(lab_env["LAB_CA"]).get(f"{server}/readyz", timeout=10)
    assert resp.status_code == 200 and resp.text == "ok"
    # the same server is refused by a client that trusts only the public roots
    with pytest.raises(requests.exceptions.SSLError):
        _session("/etc/ssl/certs/ca-certificates.crt").get(f"{server}/readyz", timeout=10)


def test_the_two_control_planes_are_separate(lab_env):
    name = f"only-local-{uuid.uuid4().hex[:6]}"
    local, remote = (
        client.CoreV1Api(_api(lab_env["KUBECONFIG_LOCAL"])),
        client.CoreV1Api(_api(lab_env["KUBECONFIG_REMOTE"])),
    )
    local.create_namespace({"metadata": {"name": name}})
    try:
        assert name in {ns.metadata.name for ns in local.list_namespace().items}
        assert name not in {ns.metadata.name for ns in remote.list_namespace().items}
    finally:
        local.delete_namespace(name)


def _wait_token(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = core.read_namespaced_secret(name, namespace).data or {}
        if data.get("token"):
            return data
        time.sleep(0.2)
    raise AssertionError(f"token controller never filled {namespace}/{name}")


def test_service_account_token_and_rbac(lab_env):
    api = _api(lab_env["KUBECONFIG_REMOTE"])
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    ns = f"lab-rbac-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        core.create_namespaced_service_account(ns, {"metadata": {"name": "deployer"}})
        core.create_namespaced_secret(
            ns,
            {
                "metadata": {
                    "name": "deployer-token",
                    "annotations": {"kubernetes.io/service-account.name": "deployer"},
                },
                "type": "kubernetes.io/service-account-token",
            },
        )
        data = _wait_token(core, ns, "deployer-token")
        token = base64.b64decode(data["token"]).decode()
        assert base64.b64decode(data["ca.crt"]) == Path(lab_env["LAB_CA"]).read_bytes()

        cfg = client.Configuration()
        cfg.host = api.configuration.host
        cfg.ssl_ca_cert = lab_env["LAB_CA"]
        cfg.api_key = {"authorization": f"Bearer {token}"}
        as_sa = client.CoreV1Api(client.ApiClient(cfg))
        for namespace in ("kube-system", ns):
            with pytest.raises(ApiException) as denied:
                as_sa.list_namespaced_pod(namespace)
            assert denied.value.status == 403
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "deployer-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}],
            },
        )
        deadline = time.monotonic() + 10
        while True:  # RBAC changes reach the authorizer's cache within moments
            try:
                assert as_sa.list_namespaced_pod(ns).items == []
                break
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with pytest.raises(ApiException) as still_denied:
            as_sa.list_namespaced_pod("kube-system")
        assert still_denied.value.status == 403
    finally:
        core.delete_namespace(ns)


def _helm_env(lab_env, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
        "HELM_REGISTRY_CONFIG": str(tmp_path / "registry.json"),
    }


def test_helm_installs_a_chart_from_the_upstream_oci_registry(lab_env, tmp_path):
    ns = f"lab-helm-{uuid.uuid4().hex[:6]}"
    env = _helm_env(lab_env, tmp_path)
    cmd = [
        lab_env["HELM"],
        "install",
        "demo",
        f"oci://{lab_env['REGISTRY_UPSTREAM']}/charts/hello",
        "--version",
        "0.1.0",
        "--ca-file",
        lab_env["LAB_CA"],
        "--kubeconfig",
        lab_env["KUBECONFIG_LOCAL"],
        "--namespace",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "60s",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    try:
        apps = client.AppsV1Api(_api(lab_env["KUBECONFIG_LOCAL"]))
        dep = apps.read_namespaced_deployment("demo-hello", ns)
        assert dep.spec.template.spec.containers[0].image == "docker.io/library/busybox:1.36"
        cm = client.CoreV1Api(_api(lab_env["KUBECONFIG_LOCAL"])).read_namespaced_config_map("demo-hello-info", ns)
        assert cm.data == {"chart": "hello-0.1.0"}
        status = subprocess.run(
            [lab_env["HELM"], "status", "demo", "-n", ns, "-o", "json", "--kubeconfig", lab_env["KUBECONFIG_LOCAL"]],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
    finally:
        subprocess.run(
            [lab_env["HELM"], "uninstall", "demo", "-n", ns, "--kubeconfig", lab_env["KUBECONFIG_LOCAL"]],
            env=env,
            capture_output=True,
            check=False,
        )
        client.CoreV1Api(_api(lab_env["KUBECONFIG_LOCAL"])).delete_namespace(ns)


def test_skopeo_copies_a_multiarch_index_with_tls_and_auth(lab_env):
    src = f"docker://{lab_env['REGISTRY_UPSTREAM']}/docker.io/library/busybox:1.36"
    dest = f"docker://{lab_env['REGISTRY_INTERNAL']}/lab-test/busybox-{uuid.uuid4().hex[:6]}:1.36"
    certs = ["--src-cert-dir", lab_env["LAB_CA_DIR"], "--dest-cert-dir", lab_env["LAB_CA_DIR"]]
    creds = f"{lab_env['REGISTRY_INTERNAL_USER']}:{lab_env['REGISTRY_INTERNAL_PASSWORD']}"
    no_auth = subprocess.run(
        ["skopeo", "copy", "--all", *certs, src, dest], capture_output=True, text=True, check=False
    )
    assert no_auth.returncode != 0 and "authentication required" in no_auth.stderr.lower()
    subprocess.run(
        ["skopeo", "copy", "--all", "--preserve-digests", *certs, "--dest-creds", creds, src, dest],
        check=True,
        capture_output=True,
        text=True,
    )

    def raw(ref: str, cert_flag: list[str]) -> bytes:
        return subprocess.run(["skopeo", "inspect", "--raw", *cert_flag, ref], check=True, capture_output=True).stdout

    src_index = raw(src, ["--cert-dir", lab_env["LAB_CA_DIR"]])
    dest_index = raw(dest, ["--cert-dir", lab_env["LAB_CA_DIR"], "--creds", creds])
    assert src_index == dest_index
    manifests = json.loads(dest_index)["manifests"]
    assert {m["platform"]["architecture"] for m in manifests} == {"amd64", "arm64", "arm"}
    for m in manifests:  # every platform manifest arrived under its digest
        child = dest.rsplit(":", 1)[0] + "@" + m["digest"]
        assert raw(child, ["--cert-dir", lab_env["LAB_CA_DIR"], "--creds", creds])


def test_lab_status_reports_every_component(lab_env):
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "lab" / "lab.py"), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    for name in ("etcd-local", "apiserver-remote", "controller-manager-local", "registry-internal"):
        assert f"{name}" in proc.stdout and "NOT" not in proc.stdout.split(name, 1)[1].splitlines()[0]
