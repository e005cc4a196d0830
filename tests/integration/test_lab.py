"""The lab is real: API servers with RBAC and a token controller, Helm, registries with TLS and auth, and the
real chart packages of a Renku 2.19.3 install in a classic Helm repository and on the upstream OCI registry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
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
    for name in ("etcd-local", "apiserver-remote", "controller-manager-local", "registry-internal", "chartrepo"):
        assert f"{name}" in proc.stdout and "NOT" not in proc.stdout.split(name, 1)[1].splitlines()[0]


# --------------------------------------------------------------------------------------------------
# the charts of a Renku 2.19.3 install: classic repository, OCI chart repositories, the images they run

CLASSIC = {  # publisher path -> chart -> versions, newest first
    "swissdatasciencecenter": {"renku": ["2.19.3"], "amalthea-sessions": ["0.30.2"], "csi-rclone": ["0.6.0", "0.3.5"]},
    "codecentric": {"keycloakx": ["7.1.4"]},
    "datashim": {"dlf-chart": ["0.3.9-renku-2"]},
}
OCI_CHARTS = {
    "docker.io/bitnamicharts": [
        ("postgresql", "14.2.4"),
        ("redis", "20.3.0"),
        ("solr", "8.9.2"),
        ("zookeeper", "12.10.1"),
        ("common", "2.16.1"),
        ("common", "2.27.0"),
        ("common", "2.31.10"),
    ],
    "harbor.renkulab.io/bitnami-mirror": [("postgresql", "14.2.4"), ("redis", "20.3.0"), ("solr", "8.9.2")],
}
IMAGE_LIST = ROOT / "lab" / "upstream-images.yaml"
MANIFEST_TYPES = {
    (False, False): "application/vnd.oci.image.manifest.v1+json",
    (False, True): "application/vnd.oci.image.index.v1+json",
    (True, False): "application/vnd.docker.distribution.manifest.v2+json",
    (True, True): "application/vnd.docker.distribution.manifest.list.v2+json",
}
# every switch that brings in more images: disabled subcharts, optional containers, test pods
RENKU_ALL_ON = [
    "global.renku.domain=renku.lab.internal",
    "notebooks.cloudstorage.s3.installDatashim=true",
    "dlf-chart.csi-nfs-chart.enabled=true",
    "global.csi-rclone.install=true",
    "amalthea-sessions.deploy.csiRclone=true",
    "ui.client.canary.enabled=true",
    "notebooks.ssh.enabled=true",
    "keycloakx.test.enabled=true",
    "keycloakx.dbchecker.enabled=true",
    "keycloakx.database.hostname=db",
    "keycloakx.database.port=5432",
    "keycloakx.database.database=keycloak",
    "postgresql.metrics.enabled=true",
    "postgresql.auth.database=renku",
    "postgresql.volumePermissions.enabled=true",
    "redis.volumePermissions.enabled=true",
    "redis.sysctl.enabled=true",
    "redis.sentinel.masterService.enabled=true",
    "redis.rbac.create=true",
    "redis.replica.automountServiceAccountToken=true",
    "solr.cloudEnabled=true",
    "solr.zookeeper.enabled=true",
    "solr.volumePermissions.enabled=true",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image_list() -> list[dict]:
    return yaml.safe_load(IMAGE_LIST.read_text())["images"]


def _full_ref(ref: str) -> str:
    """An image reference as a registry client reads it: docker.io implied, official images under library/."""
    first, _sep, rest = ref.partition("/")
    if not rest:
        return f"docker.io/library/{ref}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{ref}"
    if first == "docker.io" and "/" not in rest:
        return f"docker.io/library/{rest}"
    return ref


def _helm(lab_env, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([lab_env["HELM"], *args], env=env, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
    return proc


def test_chart_repo_index_lists_the_reference_packages(lab_env):
    base, charts = lab_env["LAB_CHART_REPO_URL"], Path(lab_env["LAB_REFERENCE_CHARTS"])
    session = _session(lab_env["LAB_CA"])
    for publisher, expected in CLASSIC.items():
        resp = session.get(f"{base}/{publisher}/index.yaml", timeout=10)
        assert resp.status_code == 200
        index = yaml.safe_load(resp.text)
        assert index["apiVersion"] == "v1" and index["generated"]
        assert {name: [e["version"] for e in entries] for name, entries in index["entries"].items()} == expected
        for name, entries in index["entries"].items():
            for entry in entries:
                package = charts / f"{name}-{entry['version']}.tgz"
                assert entry["name"] == name and entry["apiVersion"] in ("v1", "v2") and entry["created"]
                assert entry["description"] and "appVersion" in entry
                assert entry["urls"] == [package.name]  # relative to the repository URL
                assert entry["digest"] == _sha256(package)
                served = session.get(f"{base}/{publisher}/{package.name}", timeout=10)
                assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == entry["digest"]
    renku = yaml.safe_load(session.get(f"{base}/swissdatasciencecenter/index.yaml", timeout=10).text)["entries"]
    deps = {d["name"]: d for d in renku["renku"][0]["dependencies"]}
    assert deps["postgresql"]["repository"] == "oci://harbor.renkulab.io/bitnami-mirror"
    assert deps["dlf-chart"]["version"] == "0.3.9-renku-2"
    # only GET and HEAD; nothing outside the published files
    assert session.head(f"{base}/codecentric/keycloakx-7.1.4.tgz", timeout=10).status_code == 200
    with _session(lab_env["LAB_CA"]) as other:
        assert other.post(f"{base}/codecentric/index.yaml", data=b"x", timeout=10).status_code == 405
    for path in ("/", "/codecentric/", "/codecentric/renku-2.19.3.tgz", "/codecentric/%2e%2e/datashim/index.yaml"):
        assert session.get(f"{base}{path}", timeout=10).status_code == 404, path


def test_helm_pulls_renku_from_the_classic_repo_over_tls(lab_env, tmp_path):
    env, repo = _helm_env(lab_env, tmp_path), f"{lab_env['LAB_CHART_REPO_URL']}/swissdatasciencecenter"
    pull = ["pull", "--repo", repo, "renku", "--version", "2.19.3", "-d", str(tmp_path)]
    untrusted = _helm(lab_env, env, *pull, check=False)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
    _helm(lab_env, env, *pull, "--ca-file", lab_env["LAB_CA"])
    package = tmp_path / "renku-2.19.3.tgz"
    assert _sha256(package) == _sha256(Path(lab_env["LAB_REFERENCE_CHARTS"]) / package.name)
    chart = yaml.safe_load(_helm(lab_env, env, "show", "chart", str(package)).stdout)
    assert chart["name"] == "renku" and chart["version"] == "2.19.3"
    rendered = _helm(lab_env, env, "template", "renku", str(package), "--set", "global.renku.domain=renku.lab.internal")
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc}
    assert {"Deployment", "StatefulSet", "Job"} <= kinds
    # the other publishers, as `helm repo add` users see them
    for publisher, charts in CLASSIC.items():
        url = f"{lab_env['LAB_CHART_REPO_URL']}/{publisher}"
        _helm(lab_env, env, "repo", "add", f"lab-{publisher}", url, "--ca-file", lab_env["LAB_CA"])
        found = json.loads(
            _helm(lab_env, env, "search", "repo", f"lab-{publisher}/", "-l", "--devel", "-o", "json").stdout
        )
        assert {(c["name"].split("/", 1)[1], c["version"]) for c in found} == {
            (name, version) for name, versions in charts.items() for version in versions
        }


def test_helm_pulls_the_bitnami_charts_from_the_oci_repos(lab_env, tmp_path):
    env, upstream, charts = (
        _helm_env(lab_env, tmp_path),
        lab_env["REGISTRY_UPSTREAM"],
        Path(lab_env["LAB_REFERENCE_CHARTS"]),
    )
    for path in OCI_CHARTS:
        dest = tmp_path / path.replace("/", "_")
        dest.mkdir()
        ref = f"oci://{upstream}/{path}/postgresql"
        _helm(lab_env, env, "pull", ref, "--version", "14.2.4", "--ca-file", lab_env["LAB_CA"], "-d", str(dest))
        assert _sha256(dest / "postgresql-14.2.4.tgz") == _sha256(charts / "postgresql-14.2.4.tgz")
    session = _session(lab_env["LAB_CA"])
    for path, entries in OCI_CHARTS.items():
        for name, version in entries:
            resp = session.get(
                f"https://{upstream}/v2/{path}/{name}/manifests/{version}",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                timeout=10,
            )
            assert resp.status_code == 200, f"{path}/{name}:{version}"
            manifest = resp.json()
            assert manifest["config"]["mediaType"] == "application/vnd.cncf.helm.config.v1+json"
            (layer,) = manifest["layers"]  # the package itself, byte for byte
            assert layer["digest"] == "sha256:" + _sha256(charts / f"{name}-{version}.tgz")


def test_upstream_has_every_image_of_the_image_list(lab_env):
    session, upstream = _session(lab_env["LAB_CA"]), lab_env["REGISTRY_UPSTREAM"]
    accept = ",".join(MANIFEST_TYPES.values())
    images = _image_list()
    assert len(images) > 50 and len({i["ref"] for i in images}) == len(images)
    for image in images:
        repo, _sep, tag = image["ref"].rpartition(":")
        platforms = image.get("platforms") or ["linux/amd64"]
        resp = session.get(f"https://{upstream}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=10)
        assert resp.status_code == 200, image["ref"]
        body = resp.json()
        multi = len(platforms) > 1
        assert body["mediaType"] == MANIFEST_TYPES[(bool(image.get("docker_format")), multi)], image["ref"]
        if multi:
            found = {
                "/".join(
                    filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")))
                )
                for m in body["manifests"]
            }
        else:
            config_blob = session.get(f"https://{upstream}/v2/{repo}/blobs/{body['config']['digest']}", timeout=10)
            found = {f"{config_blob.json()['os']}/{config_blob.json()['architecture']}"}
        assert found == set(platforms), image["ref"]


def test_every_image_the_renku_chart_renders_is_in_the_image_list(lab_env, tmp_path):
    """helm template of the real renku chart with every optional part switched on names no image the list
    lacks (the list also holds images that only reach pods at run time, e.g. session sidecars)."""
    env = _helm_env(lab_env, tmp_path)
    repo = f"{lab_env['LAB_CHART_REPO_URL']}/swissdatasciencecenter"
    _helm(
        lab_env,
        env,
        "pull",
        "--repo",
        repo,
        "renku",
        "--version",
        "2.19.3",
        "--ca-file",
        lab_env["LAB_CA"],
        "-d",
        str(tmp_path),
    )
    sets = [arg for value in RENKU_ALL_ON for arg in ("--set", value)]
    rendered = _helm(lab_env, env, "template", "renku", str(tmp_path / "renku-2.19.3.tgz"), *sets).stdout

    def images(node: object, out: set[str]) -> set[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    out.add(_full_ref(value.strip()))
                else:
                    images(value, out)
        elif isinstance(node, list):
            for value in node:
                images(value, out)
        return out

    found: set[str] = set()
    for doc in yaml.safe_load_all(rendered):
        images(doc, found)
    listed = {i["ref"] for i in _image_list()}
    assert len(found) > 40
    assert found - listed == set()
