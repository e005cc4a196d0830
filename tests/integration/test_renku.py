"""The renku role deploys the real Renku 2.19.3 on the lab, read back from the API server and the registry.

The scenario's converge (run twice; molecule runs its whole sequence) deploys the chart the lab's mirror stage pushed to the
internal registry, into a namespace of its own; the assertions here read what was applied: every workload of the
chart exists, every container is pinned to the internal registry by a digest the registry serves, every container
trusts the site CA (following each CA variable to the object that fills the file it names), hooks completed, the
notebooks Secret names internal images, and a rerun leaves generated Secrets and setup Jobs as they were.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config
from playbook import ROOT, SCENARIOS, converge, run_playbook

pytestmark = pytest.mark.lab
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
# One release name for the module: the chart's cluster-scoped objects (a ClusterRoleBinding naming the release's
# namespace, PriorityClasses) are named after the release, so two deployments of it at once would take each
# other's objects. `make integration` keeps a module on one worker (--dist loadscope) so it deploys once.
RELEASE = "rscn"
CHART = ROOT.parent / "shared" / "reference" / "charts" / "renku-2.19.3.tgz"
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
JOB_SUFFIX = re.compile(r"-[a-z0-9]{5}$")


@pytest.fixture(scope="module")
def template_repo(lab_env):
    if "LAB_GIT_URL" not in lab_env:
        pytest.skip("the lab git server is not part of this lab")
    sys.path.insert(0, str(ROOT / "lab" / "components"))
    sys.path.insert(0, str(ROOT / "lab"))
    import gitserver

    gitserver.ROOT = Path(lab_env["LAB_GIT_ROOT"])
    name = f"renku-test-template-{WORKER}-{uuid.uuid4().hex[:5]}"
    bare = gitserver.seed_repository(name, {".gitlab-ci.yml": gitserver.GITLAB_CI, "Dockerfile": "FROM python\n"})
    yield name
    subprocess.run(["rm", "-rf", str(bare)], check=False)


@pytest.fixture(scope="module")
def deployed(lab_env, lab_mirror, template_repo, tmp_path_factory):
    """The scenario, run once; yields the namespace, the extra vars and the scenario results."""
    namespace = f"renku-{WORKER}-{uuid.uuid4().hex[:5]}"
    extra = {
        "renku_test_namespace": namespace,
        "renku_test_release": RELEASE,
        "renku_test_template": template_repo,
        "renku_test_git_url": lab_env["LAB_GIT_URL"],
        "renku_test_work_dir": str(tmp_path_factory.mktemp("renku")),
    }

    try:
        yield namespace, extra, converge("renku", extra_vars=extra, runs=2)
    finally:
        for kubeconfig, names in (
            (lab_env["KUBECONFIG_LOCAL"], (namespace, f"{namespace}-sessions")),
            (lab_env["KUBECONFIG_REMOTE"], (f"{namespace}-remote-sessions",)),
        ):
            core = client.CoreV1Api(config.new_client_from_config(kubeconfig))
            for name in names:
                with contextlib.suppress(client.ApiException):
                    core.delete_namespace(name)


@pytest.fixture(scope="module")
def api(lab_env):
    return config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"])


def workloads(api: Any, namespace: str) -> list[dict]:
    apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
    found = []
    for kind, items in (
        ("Deployment", apps.list_namespaced_deployment(namespace).items),
        ("StatefulSet", apps.list_namespaced_stateful_set(namespace).items),
        ("Job", batch.list_namespaced_job(namespace).items),
        ("CronJob", batch.list_namespaced_cron_job(namespace).items),
    ):
        for item in items:
            obj = api.sanitize_for_serialization(item)
            obj["kind"] = kind
            found.append(obj)
    return found


def pod_spec(obj: dict) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def containers_of(obj: dict) -> list[dict]:
    spec = pod_spec(obj)
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def rendered_workloads(lab_env) -> set[tuple[str, str]]:
    """What the chart renders with the scenario's values, named as the test expects to find it live."""
    from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import load_documents

    out = subprocess.run(
        [
            *(lab_env["HELM"], "template", RELEASE, str(CHART), "--namespace", "x", "--include-crds"),
            *("--set", "global.renku.domain=renku-scenario.lab.internal"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        (d["kind"], JOB_SUFFIX.sub("", d["metadata"]["name"]) if d["kind"] == "Job" else d["metadata"]["name"])
        for d in load_documents(out)
        if d.get("kind") in WORKLOADS
    }


def test_converge_changes_the_lab_and_a_rerun_pushes_nothing(deployed, lab_env, template_repo):
    _namespace, _extra, results = deployed
    assert results["converge"].changed > 0 and results["rerun"].changed == 0, results["rerun"].changed_tasks()
    pushed = subprocess.run(
        ["git", "--git-dir", f"{lab_env['LAB_GIT_ROOT']}/{template_repo}.git", "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert pushed.stdout.splitlines()[0] == "CI: build the image with kaniko, trusting the site CA"
    assert len(pushed.stdout.splitlines()) == 2, "the rerun pushed again"


def test_check_mode_with_no_chart_cached_writes_nothing(deployed, tmp_path):
    """A work directory with no chart in it yet: check mode pulls into a scratch directory it removes again."""
    _namespace, extra, _results = deployed
    work = tmp_path / "work"
    scratch_before = set(Path(tempfile.gettempdir()).glob("renku-chart-*"))
    check = run_playbook(
        SCENARIOS / "renku" / "converge.yml", check=True, extra_vars={**extra, "renku_test_work_dir": str(work)}
    )
    assert check.rc == 0, check.output[-4000:]
    assert not work.exists() or not any(work.rglob("*")), sorted(work.rglob("*"))
    assert set(Path(tempfile.gettempdir()).glob("renku-chart-*")) == scratch_before


def test_every_workload_of_the_chart_exists(deployed, lab_env, api):
    namespace = deployed[0]
    live = {
        (o["kind"], JOB_SUFFIX.sub("", o["metadata"]["name"]) if o["kind"] == "Job" else o["metadata"]["name"])
        for o in workloads(api, namespace)
    }
    expected = rendered_workloads(lab_env)
    assert len(expected) >= 18  # 10 Deployments, 4 StatefulSets, 5 setup Jobs in Renku 2.19.3
    assert expected <= live, f"not applied: {sorted(expected - live)}"


def test_every_container_is_pinned_to_a_digest_the_internal_registry_serves(deployed, lab_env, api):
    namespace = deployed[0]
    internal = lab_env["REGISTRY_INTERNAL"]
    session = requests.Session()
    session.verify, session.trust_env = lab_env["LAB_CA"], False
    session.auth = (lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"])
    accept = ",".join(
        f"application/vnd.{t}"
        for t in (
            "oci.image.index.v1+json",
            "oci.image.manifest.v1+json",
            "docker.distribution.manifest.list.v2+json",
            "docker.distribution.manifest.v2+json",
        )
    )
    images = {c["image"] for o in workloads(api, namespace) for c in containers_of(o)}
    assert len(images) >= 20  # 23 distinct images in Renku 2.19.3 with these values
    for image in sorted(images):
        match = re.fullmatch(rf"{re.escape(internal)}/(.+)@(sha256:[0-9a-f]{{64}})", image)
        assert match, f"{image} is not pinned to the internal registry by digest"
        response = session.head(
            f"https://{internal}/v2/{match[1]}/manifests/{match[2]}", headers={"Accept": accept}, timeout=30
        )
        assert response.status_code == 200, f"{image}: the internal registry answers {response.status_code}"


def test_the_notebooks_secret_names_internal_images_only(deployed, lab_env, api):
    namespace = deployed[0]
    secret = client.CoreV1Api(api).read_namespaced_secret(f"{RELEASE}-notebooks", namespace)
    images = {k: base64.b64decode(v).decode() for k, v in secret.data.items() if k.endswith("IMAGE")}
    assert set(images) >= {
        "NB_SESSIONS__DEFAULT_IMAGE",
        "NB_SESSIONS__GIT_RPC_SERVER__IMAGE",
        "NB_SESSIONS__GIT_PROXY__IMAGE",
        "NB_SESSIONS__GIT_CLONE__IMAGE",
        "NB_USER_SECRETS__IMAGE",
        "NB_SESSIONS__CA_CERTS__IMAGE",
    }
    for key, image in images.items():
        assert re.fullmatch(rf"{re.escape(lab_env['REGISTRY_INTERNAL'])}/.+@sha256:[0-9a-f]{{64}}", image), (key, image)


def _object_text(core: client.CoreV1Api, namespace: str, volume: dict, key: str | None) -> list[str]:
    """The texts a volume can put at one file: ConfigMap/Secret keys, projected sources included."""
    sources = [volume]
    if "projected" in volume:
        sources = volume["projected"].get("sources") or []
    texts = []
    for source in sources:
        if source.get("configMap"):
            data = core.read_namespaced_config_map(source["configMap"]["name"], namespace).data or {}
            texts += [v for k, v in data.items() if key is None or k == key]
        for secret_key in ("secret",):
            ref = source.get(secret_key)
            if ref:
                name = ref.get("secretName") or ref.get("name")
                data = core.read_namespaced_secret(name, namespace).data or {}
                texts += [base64.b64decode(v).decode() for k, v in data.items() if key is None or k == key]
    return texts


def ca_texts(core: client.CoreV1Api, namespace: str, spec: dict, container: dict, path: str) -> list[str]:
    """What the file at `path` in `container` is made from: the volume mounted there, or for an emptyDir,
    what the init containers that write into that volume read (Renku's init-certificates)."""
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        base = mount["mountPath"].rstrip("/")
        if path != base and not path.startswith(base + "/"):
            continue
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            key = mount.get("subPath") or path[len(base) + 1 :] or None
            return _object_text(core, namespace, volume, key)
        texts = []
        for init in spec.get("initContainers") or []:
            if any(m["name"] == mount["name"] for m in init.get("volumeMounts") or []):
                for other in init.get("volumeMounts") or []:
                    if other["name"] != mount["name"] and "emptyDir" not in volumes[other["name"]]:
                        texts += _object_text(core, namespace, volumes[other["name"]], None)
        return texts
    return []


def test_every_container_trusts_the_site_ca(deployed, lab_env, api):
    namespace = deployed[0]
    core = client.CoreV1Api(api)
    site_ca = "".join(Path(lab_env["LAB_CA"]).read_text().split())
    checked = 0
    for obj in workloads(api, namespace):
        spec = pod_spec(obj)
        for container in containers_of(obj):
            env = {e["name"]: e.get("value") for e in container.get("env") or []}
            where = f"{obj['kind']}/{obj['metadata']['name']} {container['name']}"
            for variable in CA_VARIABLES:
                assert env.get(variable), f"{where}: {variable} is not set"
                texts = ca_texts(core, namespace, spec, container, env[variable])
                assert any(site_ca in "".join(t.split()) for t in texts), f"{where}: {variable}={env[variable]}"
                checked += 1
    assert checked >= 60


def test_java_workloads_get_a_trust_store_with_the_ca(deployed, api):
    namespace = deployed[0]
    apps = client.AppsV1Api(api)
    for name in ("keycloakx", "solr"):
        sts = api.sanitize_for_serialization(apps.read_namespaced_stateful_set(f"{RELEASE}-{name}", namespace))
        spec = sts["spec"]["template"]["spec"]
        first = spec["initContainers"][0]
        assert first["name"].startswith("airgap-ca-java-")
        assert first["image"] == spec["containers"][0]["image"]
        options = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}["JAVA_TOOL_OPTIONS"]
        assert "-Djavax.net.ssl.trustStore=/var/run/airgap-ca/java/" in options


def test_hooks_completed(deployed, api):
    namespace = deployed[0]
    hooks = [
        o
        for o in workloads(api, namespace)
        if o["kind"] == "Job" and "helm.sh/hook" in (o["metadata"].get("annotations") or {})
    ]
    assert hooks, "the chart's pre-install hook did not run"
    for hook in hooks:
        conditions = {c["type"]: c["status"] for c in (hook.get("status") or {}).get("conditions") or []}
        assert conditions.get("Complete") == "True", hook["metadata"]["name"]


def test_a_rerun_keeps_generated_secrets_and_setup_jobs(deployed, api):
    namespace, extra, _results = deployed
    core = client.CoreV1Api(api)

    def snapshot() -> tuple[dict, set]:
        secrets = {
            s.metadata.name: s.data
            for s in core.list_namespaced_secret(namespace, label_selector=f"airgap.renku/release={RELEASE}").items
            if (s.metadata.annotations or {}).get("airgap.renku/always-apply") != "true"
        }
        jobs = {o["metadata"]["name"] for o in workloads(api, namespace) if o["kind"] == "Job"}
        return secrets, jobs

    before = snapshot()
    assert {"renku-ca", "renku-db-common-password", "keycloak-password-secret"} <= set(before[0])
    again = run_playbook(SCENARIOS / "renku" / "converge.yml", extra_vars=extra)
    assert again.rc == 0, again.output[-3000:]
    assert again.changed == 0, again.changed_tasks()
    assert snapshot() == before


def test_the_charts_crds_are_installed(deployed, api):
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("amaltheasessions.amalthea.dev")
    assert crd.spec.group == "amalthea.dev"
    # a cluster-wide object both the demo release and this one render: whichever created it keeps it
    assert crd.metadata.labels["airgap.renku/release"] in (RELEASE, "renku")
    established = {c.type: c.status for c in crd.status.conditions or []}
    assert established.get("Established") == "True"


def converge_with_lock(lab_env, tmp_path, namespace: str, lock: Path, check: bool = False):
    """The scenario's converge into a namespace of its own, reading the given mirror lock."""
    return run_playbook(
        SCENARIOS / "renku" / "converge.yml",
        check=check,
        extra_vars={
            "renku_test_namespace": namespace,
            "renku_test_release": RELEASE,
            "renku_test_template": "unused",
            "renku_test_git_url": lab_env["LAB_GIT_URL"],
            "renku_test_work_dir": str(tmp_path / "work"),
            "renku_mirror_lock_file": str(lock),
        },
    )


def assert_namespace_absent(lab_env, namespace: str) -> None:
    core = client.CoreV1Api(config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"]))
    with pytest.raises(client.ApiException) as missing:
        core.read_namespace(namespace)
    assert missing.value.status == 404


@pytest.mark.parametrize("case", ["missing", "other_version"])
def test_a_missing_or_stale_mirror_hand_off_stops_before_anything_is_changed(case, lab_env, lab_mirror, tmp_path):
    """The platform stage reads the mirror stage's lock: without it, or when it records the chart at another
    version than the one to deploy, the stage stops naming the mirror stage, and nothing was created."""
    import yaml

    namespace = f"renku-stale-{WORKER}-{uuid.uuid4().hex[:5]}"
    lock = tmp_path / "mirror-lock.yaml"
    if case == "other_version":
        data = yaml.safe_load(lab_mirror.read_text())
        for chart in data["charts"]:
            if chart["destination"].endswith("/charts/renku"):
                chart.update({key: "2.18.0" for key in ("version", "oci_version", "oci_tag") if key in chart})
        lock.write_text(yaml.safe_dump(data))
    result = converge_with_lock(lab_env, tmp_path, namespace, lock)
    assert result.rc != 0, "the platform stage ran on a stale mirror hand-off"
    assert "run the mirror stage first (ansible-playbook playbooks/mirror.yml)" in result.output, result.output[-3000:]
    assert result.changed == 0, result.changed_tasks()
    assert_namespace_absent(lab_env, namespace)


def test_a_check_run_before_the_mirror_stage_reports_what_waits_and_changes_nothing(lab_env, tmp_path):
    """A check run of a fresh site reaches the platform stage before the mirror stage has written its lock: the
    stage says what it would deploy and what it waits for, ends without failing, and creates nothing."""
    namespace = f"renku-fresh-{WORKER}-{uuid.uuid4().hex[:5]}"
    result = converge_with_lock(lab_env, tmp_path, namespace, tmp_path / "not-yet" / "mirror-lock.yaml", check=True)
    assert result.rc == 0, result.output[-3000:]
    said = " ".join(result.output.split())
    expected = f"check mode: Renku 2.19.3 would be deployed as release {RELEASE} in namespace {namespace}"
    assert expected in said, said[-3000:]
    assert "once the mirror stage has run" in said and "run the mirror stage first" in said
    # the report is the one change the check run announces: the role ended there, nothing was fetched or rendered
    assert [n.split(" : ")[-1] for n in result.changed_tasks()] == [
        "Report what a check run cannot predict before the mirror stage has run"
    ]
    assert not (tmp_path / "work").exists()
    assert_namespace_absent(lab_env, namespace)
