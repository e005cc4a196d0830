"""remote_cluster role on the lab: remote = session cluster, local = Renku (stand-in Deployments) + data-service.

Setup (not the role's job): the lab's mirror stage has put the real amalthea-sessions and csi-rclone charts in the
internal registry and written their image-values overlays; a StorageClass is created on the remote cluster;
Deployments named like the Renku services run in a local namespace so the rollout restart is observable; and the
platform stage's record (ConfigMap airgap-platform-<release>, as the renku role writes it) names the versions the
local Renku release vendors, which the role must install on the remote cluster.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from playbook import SCENARIOS, converge, run_playbook

CONVERGE = SCENARIOS / "remote_cluster" / "converge.yml"
SCENARIO_VARS = yaml.safe_load(CONVERGE.read_text())[0]["vars"]
SESSIONS_NS, RENKU_NS = "itest-rc-sessions", "itest-rc-renku"
RESTARTED = ["renku-data-service", "renku-k8s-watcher", "renku-data-tasks", "renku-secrets-storage"]
ANNOTATION = "kubectl.kubernetes.io/restartedAt"
# renku 2.19.3's dependencies, as the renku role records them (roles/renku/tasks/record.yml)
RENKU_VERSIONS = {
    "postgresql": "14.2.4",
    "keycloakx": "7.1.4",
    "redis": "20.3.0",
    "amalthea-sessions": "0.30.2",
    "dlf-chart": "0.3.9-renku-2",
    "csi-rclone": "0.6.0",
    "solr": "8.9.2",
    "common": "2.31.10",
}
CHARTS = {name: RENKU_VERSIONS[name] for name in ("amalthea-sessions", "csi-rclone")}
CRD, HELM_NS = "amaltheasessions.amalthea.dev", "meta.helm.sh/release-namespace"
# what the real charts render for the role's release names (csi-rclone with fullnameOverride itest-rc-csi-rclone)
WORKLOADS = [
    ("Deployment", "amalthea-sessions-controller-manager"),
    ("DaemonSet", "itest-rc-csi-rclone-nodeplugin"),
    ("StatefulSet", "itest-rc-csi-rclone-controller"),
]
USER_NODE = SCENARIO_VARS["remote_cluster_user_nodes"][0]
PURPOSE_LABEL = "renku.io/node-purpose"
SESSION_ORIGIN = "https://" + SCENARIO_VARS["remote_cluster_cluster"]["session_host"]
README = Path(__file__).resolve().parents[2] / "roles" / "remote_cluster" / "README.md"
# a JSON Web Token anywhere in ansible's output (header and payload are base64url JSON objects)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(lab_env, lab_mirror):
    remote = config.new_client_from_config(lab_env["KUBECONFIG_REMOTE"])
    local = config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"])
    # the scenario's own preparation: the stand-in Renku, its platform record and the sessions StorageClass
    prepared = run_playbook(SCENARIOS / "remote_cluster" / "stand_in_renku.yml")
    assert prepared.rc == 0, prepared.output[-3000:]
    return {"env": lab_env, "remote": remote, "local": local, "overlays": lab_mirror.parent / "values"}


def keycloak_token(env: dict[str, str], admin: bool = True) -> str:
    """An access token of the lab's renku-admin user (or of the user without the role) from the real Keycloak."""
    user = "LAB_KEYCLOAK_RENKU_ADMIN_USER" if admin else "LAB_KEYCLOAK_RENKU_USER"
    with requests.Session() as session:
        session.trust_env = False
        resp = session.post(
            f"{env['LAB_KEYCLOAK_URL']}/realms/{env['LAB_KEYCLOAK_REALM']}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": env["LAB_KEYCLOAK_TOKEN_CLIENT"],
                "username": env[user],
                "password": env[user.removesuffix("_USER") + ("_PASSWORD" if admin else "_USER_PASSWORD")],
            },
            verify=env["LAB_CA"],
            timeout=30,
        )
    resp.raise_for_status()
    return resp.json()["access_token"]


def api_session(env: dict[str, str], token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = env["LAB_CA"]
    session.headers["Authorization"] = f"Bearer {token or keycloak_token(env)}"
    return session


def stored_clusters(env: dict[str, str]) -> dict[str, dict]:
    with api_session(env) as session:
        return {c["name"]: c for c in session.get(f"{env['LAB_DATA_SERVICE_URL']}/clusters", timeout=10).json()}


def registered(env: dict[str, str]) -> tuple[list[str], list[str]]:
    with api_session(env) as session:
        base = env["LAB_DATA_SERVICE_URL"]
        clusters = [c["name"] for c in session.get(f"{base}/clusters", timeout=10).json()]
        pools = [p["name"] for p in session.get(f"{base}/resource_pools", timeout=10).json()]
    return clusters, pools


def sessions_client(env: dict[str, str]) -> dict:
    """renku-jupyterserver as Keycloak's admin API returns it."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = env["LAB_CA"]
        resp = session.post(
            f"{env['LAB_KEYCLOAK_URL']}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": env["LAB_KEYCLOAK_ADMIN_USER"],
                "password": env["LAB_KEYCLOAK_ADMIN_PASSWORD"],
            },
            timeout=30,
        )
        resp.raise_for_status()
        session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        url = f"{env['LAB_KEYCLOAK_URL']}/admin/realms/{env['LAB_KEYCLOAK_REALM']}/clients"
        [found] = session.get(url, params={"clientId": env["LAB_KEYCLOAK_SESSIONS_CLIENT"]}, timeout=30).json()
    return found


def documented_annotations(renku_url: str) -> dict[str, str]:
    """The SameSite=None annotations as the role README documents them (Renku's remote-cluster documentation),
    for the given Renku origin."""
    block = README.read_text().split("<!-- samesite-none-annotations -->")[1].split("```yaml")[1].split("```")[0]
    return yaml.safe_load(block.replace("https://renku.example.org", renku_url))


def assert_no_secret(output: str, env: dict[str, str]) -> None:
    assert not JWT.search(output), "a token appears in the output"
    for key in ("LAB_KEYCLOAK_RENKU_ADMIN_PASSWORD", "LAB_KEYCLOAK_RENKU_USER_PASSWORD", "LAB_KEYCLOAK_ADMIN_PASSWORD"):
        assert env[key] not in output, f"{key} appears in the output"


def restarted_at(local: client.ApiClient) -> dict[str, str | None]:
    apps = client.AppsV1Api(local)
    out = {}
    for name in [*RESTARTED, "renku-ui"]:
        annotations = apps.read_namespaced_deployment(name, RENKU_NS).spec.template.metadata.annotations or {}
        out[name] = annotations.get(ANNOTATION)
    return out


def namespace_active(api: client.ApiClient, name: str) -> bool:
    try:
        return client.CoreV1Api(api).read_namespace(name).status.phase == "Active"
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def priority_class_exists(remote: client.ApiClient, name: str) -> bool:
    try:
        client.SchedulingV1Api(remote).read_priority_class(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def helm_releases(env: dict[str, str]) -> dict[str, str]:
    """Release name -> chart (name-version) in the sessions namespace of the remote cluster, as Helm records them."""
    out = subprocess.run(
        [env["HELM3"], "list", "-n", SESSIONS_NS, "-o", "json", "--kubeconfig", env["KUBECONFIG_REMOTE"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {release["name"]: release["chart"] for release in json.loads(out or "[]")}


def overlay_images(overlays: Path) -> set[str]:
    """repository:tag of every image value in the mirror's overlays for the two charts."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if "repository" in node and "tag" in node:
                found.add(f"{node['repository']}:{node['tag']}")
            for value in node.values():
                walk(value)

    for chart in CHARTS:
        walk(yaml.safe_load((overlays / f"{chart}.yaml").read_text()))
    return found


def workload_images(remote: client.ApiClient) -> set[str]:
    """Images of the charts' workloads on the remote cluster: containers, and the sidecar image amalthea starts."""
    apps = client.AppsV1Api(remote)
    read = {
        "Deployment": apps.read_namespaced_deployment,
        "DaemonSet": apps.read_namespaced_daemon_set,
        "StatefulSet": apps.read_namespaced_stateful_set,
    }
    images = set()
    for kind, name in WORKLOADS:
        spec = read[kind](name, SESSIONS_NS).spec.template.spec
        for container in [*(spec.init_containers or []), *spec.containers]:
            images.add(container.image)
            images.update(e.value for e in container.env or [] if e.name.endswith("_IMAGE"))
    return images


def cluster_object(remote: client.ApiClient, read, name: str):
    try:
        return read(name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
def user_node_purpose_kept(lab):
    """The scenario's user node is one of the demo's too: give it back the purpose label it had."""
    core = client.CoreV1Api(lab["remote"])
    before = (core.read_node(USER_NODE).metadata.labels or {}).get(PURPOSE_LABEL)
    yield
    if before is not None:
        core.patch_node(USER_NODE, {"metadata": {"labels": {PURPOSE_LABEL: before}}})


def test_remote_cluster_lifecycle(lab, user_node_purpose_kept):
    env, remote, local = lab["env"], lab["remote"], lab["local"]
    absent = run_playbook(CONVERGE, extra_vars={"remote_cluster_state": "absent"})
    assert absent.rc == 0, absent.output[-3000:]
    assert helm_releases(env) == {}
    # the packages come from the internal registry on this run, not from an earlier run's cache
    shutil.rmtree(Path(env["LAB_STATE"]) / "itest-rc-charts", ignore_errors=True)
    extensions = client.ApiextensionsV1Api(remote)
    crd_before = cluster_object(remote, extensions.read_custom_resource_definition, CRD)
    # as converge.yml decides: otherwise the lab's own amalthea-sessions release owns it (make demo)
    crd_ours = crd_before is None or (crd_before.metadata.annotations or {}).get(HELM_NS) == SESSIONS_NS

    check = run_playbook(CONVERGE, check=True, diff=True)
    assert check.rc == 0, check.output[-3000:]
    assert not namespace_active(remote, SESSIONS_NS), "check mode created the sessions namespace"
    assert not priority_class_exists(remote, "itest-rc-standard"), "check mode created a PriorityClass"
    assert "itest-remote-cluster" not in registered(env)[0], "check mode registered the cluster"

    converge("remote_cluster", runs=2)
    # the cluster record as stored: the documented SameSite=None annotations for the Renku origin, valid JSON
    # round-tripped through the data-service, and "" for the TLS secret with the default cluster certificate
    stored = stored_clusters(env)["itest-remote-cluster"]
    assert stored["session_ingress_annotations"] == documented_annotations(SCENARIO_VARS["remote_cluster_renku_url"])
    assert stored["session_tls_secret_name"] == "" and stored["session_ingress_use_default_cluster_tls_cert"]
    # Keycloak's sessions client: the origin once in redirect URIs and web origins, Renku's own entries kept
    kc = sessions_client(env)
    assert kc["redirectUris"].count(SESSION_ORIGIN + "/*") == 1 and kc["webOrigins"].count(SESSION_ORIGIN) == 1, kc
    assert "https://renku.lab.internal/*" in kc["redirectUris"], kc["redirectUris"]
    assert_no_secret(check.output, env)
    # the platform -> remote hand-off: exactly the versions the record names, only the charts asked for
    assert helm_releases(env) == {name: f"{name}-{version}" for name, version in CHARTS.items()}
    # the images are the mirror's: every workload image is the overlay's, at the internal registry
    images = workload_images(remote)
    assert all(image.startswith(f"{env['REGISTRY_INTERNAL']}/") for image in images), images
    assert images == overlay_images(lab["overlays"]), images ^ overlay_images(lab["overlays"])
    crd = extensions.read_custom_resource_definition(CRD)
    owner = (crd.metadata.annotations or {}).get(HELM_NS)
    assert owner == SESSIONS_NS if crd_ours else owner != SESSIONS_NS, owner

    # versions given explicitly (a platform not deployed by this collection, no record): nothing to change
    explicit = run_playbook(
        CONVERGE,
        check=True,
        extra_vars={
            "remote_cluster_renku_release": "itest-rc-unrecorded",
            "remote_cluster_renku_chart_versions": CHARTS,
        },
    )
    assert explicit.rc == 0, explicit.output[-3000:]
    assert explicit.changed == 0, explicit.changed_tasks()

    first = restarted_at(local)
    assert all(first[name] for name in RESTARTED), first
    assert first["renku-ui"] is None, "a service that does not read the Secret was restarted"

    # the kubeconfig in the Secret works and is confined to the sessions namespace
    secret = client.CoreV1Api(local).read_namespaced_secret("renku-remote-clusters", RENKU_NS)
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data["itest-remote.yaml"]))
    session_api = config.new_client_from_config_dict(kubeconfig)
    assert client.CoreV1Api(session_api).list_namespaced_pod(SESSIONS_NS).items is not None
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(session_api).list_namespaced_pod("kube-system")
    assert denied.value.status == 403

    # unchanged Secret -> no restart (the rerun above had changed=0, so the restart handler never
    # fired and `first` is the converge run's stamp); changed Secret -> restart of exactly the four services
    client.CoreV1Api(local).patch_namespaced_secret(
        "renku-remote-clusters", RENKU_NS, {"data": {"itest-remote.yaml": base64.b64encode(b"stale").decode()}}
    )
    healed = run_playbook(CONVERGE)
    assert healed.rc == 0, healed.output[-3000:]
    assert_no_secret(healed.output, env)
    again = sessions_client(env)
    assert (again["redirectUris"], again["webOrigins"]) == (kc["redirectUris"], kc["webOrigins"])
    second = restarted_at(local)
    assert all(second[name] and second[name] != first[name] for name in RESTARTED), (first, second)
    assert second["renku-ui"] is None

    gone = run_playbook(CONVERGE, extra_vars={"remote_cluster_state": "absent"})
    assert gone.rc == 0, gone.output[-3000:]
    assert_no_secret(gone.output, env)
    kc_after = sessions_client(env)
    assert SESSION_ORIGIN + "/*" not in kc_after["redirectUris"] and SESSION_ORIGIN not in kc_after["webOrigins"]
    assert kc_after["redirectUris"] == [u for u in kc["redirectUris"] if u != SESSION_ORIGIN + "/*"]
    assert not namespace_active(remote, SESSIONS_NS)
    assert not priority_class_exists(remote, "itest-rc-standard")
    clusters, pools = registered(env)
    assert "itest-remote-cluster" not in clusters and "itest-rc-pool" not in pools
    secret = client.CoreV1Api(local).read_namespaced_secret("renku-remote-clusters", RENKU_NS)
    assert "itest-remote.yaml" not in (secret.data or {})
    node = client.CoreV1Api(remote).read_node(USER_NODE)
    assert PURPOSE_LABEL not in (node.metadata.labels or {})
    assert not [t for t in node.spec.taints or [] if t.key == "itest.renku.io/sessions"]
    # helm uninstall took the charts' cluster-wide objects along (the CRD only when this release owned it)
    assert helm_releases(env) == {}
    storage = client.StorageV1Api(remote)
    assert cluster_object(remote, storage.read_csi_driver, "itest-rc-csi-rclone-driver") is None
    assert cluster_object(remote, storage.read_storage_class, "itest-rc-csi-rclone-secret-annotation") is None
    crd_after = cluster_object(remote, extensions.read_custom_resource_definition, CRD)
    # a deleted CRD goes once the API server has dropped its objects (finalizer): gone or on its way
    assert (crd_after is None or crd_after.metadata.deletion_timestamp is not None) == crd_ours, crd_after


def _cluster(**changes):
    return {**SCENARIO_VARS["remote_cluster_cluster"], **changes}


def _pool(**changes):
    return [{**SCENARIO_VARS["remote_cluster_resource_pools"][0], **changes}]


def _classes(*updates):
    classes = copy.deepcopy(SCENARIO_VARS["remote_cluster_resource_pools"][0]["classes"])
    for cls, update in zip(classes, updates, strict=False):
        cls.update(update)
    return classes


REFUSALS = {
    "short-name": ({"remote_cluster_cluster": _cluster(name="abcd")}, "cluster.name"),
    "config-name": ({"remote_cluster_cluster": _cluster(config_name="itest.yml")}, "cluster.config_name"),
    "tls-both": (
        {"remote_cluster_cluster": _cluster(session_tls_secret_name="sessions-tls")},
        "session_tls_secret_name and session_ingress_use_default_cluster_tls_cert: true (both given)",
    ),
    "tls-neither": (
        {"remote_cluster_cluster": _cluster(session_ingress_use_default_cluster_tls_cert=False)},
        "(neither given)",
    ),
    "public-pool": ({"remote_cluster_resource_pools": _pool(public=True)}, "resource_pool.public"),
    "over-quota": (
        {"remote_cluster_resource_pools": _pool(classes=_classes({}, {"cpu": 32}))},
        "resource_pool.classes[1].cpu (32) exceeds the pool quota.cpu",
    ),
    "no-default": (
        {"remote_cluster_resource_pools": _pool(classes=_classes({"default": False}))},
        "resource_pool.classes must have exactly one class with default: true, found 0",
    ),
    "two-defaults": (
        {"remote_cluster_resource_pools": _pool(classes=_classes({}, {"default": True}))},
        "found 2",
    ),
    "storage-class": (
        {"remote_cluster_cluster": _cluster(session_storage_class="no-such-class")},
        "remote_cluster_cluster.session_storage_class: StorageClass 'no-such-class' does not exist",
    ),
    "chart-version": (
        {"remote_cluster_charts": {"amalthea-sessions": "0.30.1", "csi-rclone": "0.6.0"}},
        "remote_cluster_charts['amalthea-sessions']: version 0.30.1 differs from 0.30.2",
    ),
    "no-record": (
        {"remote_cluster_renku_release": "itest-rc-unrecorded"},
        "ConfigMap itest-rc-renku/airgap-platform-itest-rc-unrecorded is missing on the local cluster: run the "
        "platform stage first (ansible-playbook playbooks/renku.yml)",
    ),
    "no-overlay": (
        {"remote_cluster_image_values_dir": "/nonexistent/values"},
        "remote_cluster_image_values_dir: /nonexistent/values/amalthea-sessions.yaml, "
        "/nonexistent/values/csi-rclone.yaml missing; the mirror stage (ansible-playbook playbooks/mirror.yml",
    ),
    "not-vendored": (
        {
            "remote_cluster_renku_release": "itest-rc-unrecorded",
            "remote_cluster_renku_chart_versions": {"csi-rclone": "0.6.0"},
        },
        "remote_cluster_chart_names: ['amalthea-sessions'] are not vendored by the local Renku release",
    ),
    "unreachable": (
        {"remote_cluster_remote_auth": {"host": "https://127.0.0.1:9", "api_key": "x", "ca_cert": "{{ lab_ca_file }}"}},
        "remote_cluster_remote_auth: the remote API server https://127.0.0.1:9 is unreachable",
    ),
    "wrong-token": (
        {
            "remote_cluster_remote_auth": {
                "host": "https://127.0.0.1:26443",
                "api_key": "not-a-valid-token",
                "ca_cert": "{{ lab_ca_file }}",
            }
        },
        "refuses the credentials",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_before_any_change(lab, case):
    overrides, message = REFUSALS[case]
    namespace = f"itest-rc-refused-{case}"
    extra = {"remote_cluster_sessions_namespace": namespace, **overrides}
    result = run_playbook(CONVERGE, extra_vars=extra)
    assert result.rc != 0, f"{case} was not refused"
    assert message in " ".join(result.output.split()), result.output[-3000:]
    assert result.changed == 0, result.changed_tasks()
    assert not namespace_active(lab["remote"], namespace)


def test_a_check_run_before_the_platform_stage_reports_what_waits_and_changes_nothing(lab):
    """A check run of a fresh site reaches this stage before Renku is deployed: the settings and the remote
    cluster are still checked, then the stage says what it waits for and ends without failing or changing."""
    namespace = "itest-rc-fresh-check"
    extra = {"remote_cluster_sessions_namespace": namespace, "remote_cluster_renku_release": "itest-rc-unrecorded"}
    result = run_playbook(CONVERGE, check=True, extra_vars=extra)
    assert result.rc == 0, result.output[-3000:]
    said = " ".join(result.output.split())
    assert (
        "would be connected to Renku once the platform stage has deployed it; "
        "ConfigMap itest-rc-renku/airgap-platform-itest-rc-unrecorded missing on the local cluster"
    ) in said, said[-3000:]
    assert [n.split(" : ")[-1] for n in result.changed_tasks()] == [
        "Report what a check run cannot predict before Renku is deployed"
    ]
    assert not namespace_active(lab["remote"], namespace)
    # the same check run with a bad setting still fails: ending early does not skip validating the inputs
    bad = run_playbook(CONVERGE, check=True, extra_vars={**extra, **REFUSALS["storage-class"][0]})
    assert bad.rc != 0 and REFUSALS["storage-class"][1] in " ".join(bad.output.split())


@pytest.fixture
def session_crd_owner(lab):
    """The AmaltheaSession CRD as it is on the remote cluster (the demo's release owns it after `make demo`), or,
    when there is none, one made here with Helm's ownership annotations for a release elsewhere (removed again).
    Yields its owner as the refusal names it."""
    extensions = client.ApiextensionsV1Api(lab["remote"])
    deadline = time.monotonic() + 60  # a CRD the lifecycle test uninstalled goes once its finalizer has run
    crd = cluster_object(lab["remote"], extensions.read_custom_resource_definition, CRD)
    while crd is not None and crd.metadata.deletion_timestamp is not None and time.monotonic() < deadline:
        time.sleep(1)
        crd = cluster_object(lab["remote"], extensions.read_custom_resource_definition, CRD)
    if crd is not None:
        annotations = crd.metadata.annotations or {}
        owner = annotations.get(HELM_NS)
        yield (
            f"release {annotations.get('meta.helm.sh/release-name')} in namespace {owner}"
            if owner
            else "no Helm release"
        )
        return
    plural, group = CRD.split(".", 1)
    extensions.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": CRD,
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {HELM_NS: "itest-rc-elsewhere", "meta.helm.sh/release-name": "amalthea-sessions"},
            },
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": "amaltheasession", "kind": "AmaltheaSession"},
                "versions": [
                    {
                        "name": "v1alpha1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                ],
            },
        }
    )
    yield "release amalthea-sessions in namespace itest-rc-elsewhere"
    extensions.delete_custom_resource_definition(CRD)


def test_a_session_crd_another_release_owns_is_refused_before_any_change(lab, session_crd_owner):
    """amalthea-sessions' CRD is one per cluster: installing the chart's release into another namespace than the
    release that owns it is refused with the ways out, before the namespace, RBAC or anything else is made."""
    namespace = "itest-rc-refused-crd"
    values = copy.deepcopy(SCENARIO_VARS["remote_cluster_chart_values"])
    values["amalthea-sessions"]["deployCrd"] = True
    extra = {
        "remote_cluster_sessions_namespace": namespace,
        "remote_cluster_chart_namespaces": {"amalthea-sessions": namespace, "csi-rclone": namespace},
        "remote_cluster_chart_values": values,
    }
    result = run_playbook(CONVERGE, extra_vars=extra)
    said = " ".join(result.output.split())
    assert result.rc != 0, said[-3000:]
    assert (
        f"remote_cluster_chart_namespaces['amalthea-sessions']: CustomResourceDefinition {CRD} on the remote cluster "
        f"belongs to {session_crd_owner}, and a cluster has one"
    ) in said, said[-3000:]
    assert "remote_cluster_chart_values['amalthea-sessions'].deployCrd: false" in said
    assert result.changed == 0, result.changed_tasks()
    assert not namespace_active(lab["remote"], namespace)


def test_non_admin_token_refused_and_reported(lab):
    """A Keycloak user without renku-admin: the data-service refuses (403), the role says why, changes nothing."""
    env = lab["env"]
    namespace = "itest-rc-refused-non-admin"
    result = run_playbook(
        CONVERGE,
        extra_vars={
            "remote_cluster_sessions_namespace": namespace,
            "remote_cluster_renku_admin_user": env["LAB_KEYCLOAK_RENKU_USER"],
            "remote_cluster_renku_admin_password": env["LAB_KEYCLOAK_RENKU_USER_PASSWORD"],
        },
    )
    assert result.rc != 0, "a non-admin token was accepted"
    said = " ".join(result.output.split())
    assert "403 Forbidden" in said and "needs the Keycloak realm role renku-admin" in said, result.output[-3000:]
    assert result.changed == 0, result.changed_tasks()
    assert not namespace_active(lab["remote"], namespace)
    assert_no_secret(result.output, env)


def test_tokens_of_anyone_else_refused(lab):
    """The stand-in checks signatures against the realm's JWKS: a token with the real key id, claims copied from
    a real admin token, but signed by another key, is refused; a real admin token and a real user token are told apart."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    env = lab["env"]
    real = keycloak_token(env)
    header_b64, payload_b64, _signature = real.split(".")
    signing_input = f"{header_b64}.{payload_b64}".encode()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_sig = other_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    forged = f"{header_b64}.{payload_b64}.{base64.urlsafe_b64encode(forged_sig).decode().rstrip('=')}"
    url = f"{env['LAB_DATA_SERVICE_URL']}/clusters"
    statuses = {}
    for name, token in {"admin": real, "user": keycloak_token(env, admin=False), "forged": forged}.items():
        with api_session(env, token) as session:
            statuses[name] = session.get(url, timeout=10).status_code
    assert statuses == {"admin": 200, "user": 403, "forged": 401}, statuses
    claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert claims["exp"] > time.time()
