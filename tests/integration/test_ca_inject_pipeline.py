"""The render -> ca_inject -> apply pipeline on the lab, and proof that the injected trust really works.

- the helm_airgap scenario's converge deploys the Renku-shaped fixture chart into the local cluster, twice
  (molecule runs the scenario's whole sequence), then every pod template read back from the API is
  checked per runtime, hooks included; a further converge changes nothing and leaves the generated
  Secret byte-for-byte unchanged;
- outside Kubernetes, each runtime's variable with the *deployed* bundle reaches an HTTPS server
  signed by the lab CA and fails without it (Python requests, OpenSSL via Python ssl, curl, Node, Go,
  git clone from the lab git server, Java with the trust store built by the init container's script);
- a Helm 3 post-renderer leaves hooks unpatched; the Helm 4 plugin and the pipeline do not;
- bad CA inputs are refused before anything reaches the cluster.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from playbook import ROOT, SCENARIOS, PlaybookResult, converge, run_playbook

CHART = ROOT / "tests" / "fixtures" / "charts" / "renku-like"
PLUGIN_SRC = ROOT / "roles" / "helm_airgap" / "files" / "airgap-ca-inject.py"
BUNDLE_DIR = "/etc/airgap-ca"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
APPLY_TASK = (
    "airgap.renku.helm_airgap : Apply the release (bundle first, hooks in Helm's order, prune, existing Secrets kept)"
)
# shared by the pytest-xdist workers of one run (see the `deployed` fixture)
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
CURRENT = {"namespace": f"ca-pipe-{RUN_ID}"}

pytestmark = pytest.mark.lab


# --------------------------------------------------------------------------------------------------
# fixtures


def kwok_running() -> bool:
    status = subprocess.run(
        [sys.executable, str(ROOT / "lab" / "lab.py"), "status"], capture_output=True, text=True, check=False
    )
    return any(line.startswith("kwok-local") and " healthy" in line for line in status.stdout.splitlines())


@pytest.fixture(scope="module")
def api(lab_env):
    return config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"])


def namespace_active(api, name: str) -> bool:
    try:
        return client.CoreV1Api(api).read_namespace(name).status.phase == "Active"
    except client.ApiException:
        return False


@pytest.fixture(scope="module")
def deployed(lab_env, api, tmp_path_factory):
    """The fixture chart deployed through the pipeline scenario; yields the scenario results.

    Deployed once per test run: pytest-xdist workers share it through a locked state file in the run's
    shared temporary directory; the last worker to finish deletes the namespaces.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    lock_path, state_path = shared / "ca-pipeline.lock", shared / "ca-pipeline.json"
    with open(lock_path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(state_path.read_text()) if state_path.exists() else {"users": 0, "generation": 0}
        if "results" not in state or not namespace_active(api, state["namespace"]):
            state["generation"] += 1
            state["namespace"] = f"ca-pipe-{RUN_ID}-{state['generation']}"
            extra = {"helm_airgap_test_namespace": state["namespace"], "helm_airgap_test_wait_hooks": kwok_running()}
            results = converge("helm_airgap", extra_vars=extra, runs=2)
            state["results"] = {name: dataclasses.asdict(result) for name, result in results.items()}
        state["users"] += 1
        state_path.write_text(json.dumps(state))
    CURRENT["namespace"] = state["namespace"]
    yield {name: PlaybookResult(**fields) for name, fields in state["results"].items()}
    with open(lock_path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(state_path.read_text())
        state["users"] -= 1
        state_path.write_text(json.dumps(state))
        if state["users"] == 0:
            core = client.CoreV1Api(api)
            for namespace in (CURRENT["namespace"], f"{CURRENT['namespace']}-sessions"):
                with contextlib.suppress(client.ApiException):
                    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def bundle_files(deployed, api, tmp_path_factory) -> Path:
    """The bundle ConfigMap as deployed, written out as the pod would see it in /etc/airgap-ca."""
    config_map = client.CoreV1Api(api).read_namespaced_config_map("airgap-ca-bundle", CURRENT["namespace"])
    directory = tmp_path_factory.mktemp("airgap-ca")
    for key, value in config_map.data.items():
        (directory / key).write_text(value)
    return directory


@pytest.fixture(scope="module")
def https_server(lab_env):
    """A loopback HTTPS server with a leaf certificate from the lab CA."""
    sys.path.insert(0, str(ROOT / "lab"))
    import labpki

    cert, key = labpki.LabCA(Path(lab_env["LAB_STATE"]) / "pki").issue(
        f"ca-inject-test-{WORKER}", "localhost", ["127.0.0.1", "localhost"]
    )

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"trusted\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    labpki.use_tls(server, cert, key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def clean_env(**extra: str) -> dict[str, str]:
    """No inherited CA variables: only what the test injects counts."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", **extra}


def pod_templates(api) -> list[tuple[str, dict]]:
    apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
    found = []
    for item in (
        apps.list_namespaced_deployment(CURRENT["namespace"]).items
        + apps.list_namespaced_stateful_set(CURRENT["namespace"]).items
    ):
        found.append(
            (f"{item.kind or 'workload'}/{item.metadata.name}", api.sanitize_for_serialization(item.spec.template.spec))
        )
    for item in batch.list_namespaced_job(CURRENT["namespace"]).items:
        found.append((f"Job/{item.metadata.name}", api.sanitize_for_serialization(item.spec.template.spec)))
    for item in batch.list_namespaced_cron_job(CURRENT["namespace"]).items:
        spec = item.spec.job_template.spec.template.spec
        found.append((f"CronJob/{item.metadata.name}", api.sanitize_for_serialization(spec)))
    return found


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def deployed_env(api, workload: str, container: str) -> dict[str, str]:
    for name, spec in pod_templates(api):
        if name.endswith("/" + workload):
            for c in spec.get("initContainers", []) + spec["containers"]:
                if c["name"] == container:
                    return env_of(c)
    raise AssertionError(f"{workload}/{container} not deployed")


def as_local(value: str, bundle_files: Path) -> str:
    return value.replace(BUNDLE_DIR, str(bundle_files))


# --------------------------------------------------------------------------------------------------
# the pipeline on the cluster


def test_every_container_of_every_pod_template_carries_its_runtime_settings(deployed, api):
    templates = pod_templates(api)
    names = {name.split("/", 1)[1] for name, _spec in templates}
    assert {"demo-db-init", "demo-gitlab-check", "demo-post-install", "demo-data-tasks", "demo-postgresql"} <= names
    expected = {
        "REQUESTS_CA_BUNDLE": f"{BUNDLE_DIR}/ca-bundle.crt",
        "SSL_CERT_FILE": f"{BUNDLE_DIR}/ca-bundle.crt",
        "CURL_CA_BUNDLE": f"{BUNDLE_DIR}/ca-bundle.crt",
        "GIT_SSL_CAINFO": f"{BUNDLE_DIR}/ca-bundle.crt",
        "NODE_EXTRA_CA_CERTS": f"{BUNDLE_DIR}/custom-ca.crt",
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": f"{BUNDLE_DIR}/ca-bundle.crt",
        "PIP_CERT": f"{BUNDLE_DIR}/ca-bundle.crt",
        "AWS_CA_BUNDLE": f"{BUNDLE_DIR}/ca-bundle.crt",
    }
    checked = 0
    for name, spec in templates:
        assert {"name": "airgap-ca-bundle", "configMap": {"name": "airgap-ca-bundle", "defaultMode": 420}} in spec[
            "volumes"
        ], name
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["name"].startswith("airgap-ca-java-"):
                continue
            env = env_of(container)
            assert {k: env.get(k) for k in expected} == expected, f"{name}/{container['name']}"
            assert any(m["mountPath"] == BUNDLE_DIR for m in container["volumeMounts"]), name
            checked += 1
        java = [c for c in spec["containers"] if "temurin" in c["image"]]
        for container in java:
            init = spec["initContainers"][0]
            assert init["name"] == f"airgap-ca-java-{container['name']}", name
            assert init["image"] == container["image"]
            assert f"/var/run/airgap-ca/java/{container['name']}/cacerts" in env_of(container)["JAVA_TOOL_OPTIONS"]
    assert checked >= 10


def test_second_deploy_changes_nothing_and_keeps_the_generated_secret(deployed, api, lab_env):
    render = [lab_env["HELM"], "template", "demo", str(CHART)]
    first, second = (subprocess.run(render, capture_output=True, text=True, check=True).stdout for _run in range(2))
    assert first != second, "the chart regenerates its password on every offline render"
    again = deployed["rerun"]
    assert again.changed == 0, again.changed_tasks()
    applied = again.task_results(APPLY_TASK)[0]
    assert f"v1/Secret/{CURRENT['namespace']}/demo-generated" in applied["kept_secrets"]
    assert applied["hooks_run"] == []
    assert applied["phase"] == "upgrade"
    secret = client.CoreV1Api(api).read_namespaced_secret("demo-generated", CURRENT["namespace"])
    # written once, at creation, by our field manager; the second and third deploys did not touch it
    assert [(m.manager, m.operation) for m in secret.metadata.managed_fields] == [("airgap-renku", "Apply")]
    assert secret.metadata.managed_fields[0].time == secret.metadata.creation_timestamp


def test_hooks_ran_in_helm_order(deployed):
    results = deployed["converge"].task_results(APPLY_TASK)
    hooks = results[0]["hooks_run"]
    assert hooks == [
        f"batch/v1/Job/{CURRENT['namespace']}/demo-db-init",
        f"batch/v1/Job/{CURRENT['namespace']}/demo-gitlab-check",
        f"batch/v1/Job/{CURRENT['namespace']}/demo-post-install",
    ]
    assert results[0]["phase"] == "install"


# --------------------------------------------------------------------------------------------------
# the trust works outside Kubernetes, with the deployed bundle and the deployed variables

PY_REQUESTS = "import requests, sys; print(requests.get(sys.argv[1], timeout=10).status_code)"
PY_OPENSSL = "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=10).status)"
NODE_GET = (
    "require('https').get(process.argv[1], r => console.log(r.statusCode))"
    ".on('error', e => { console.error(e.message); process.exit(1) })"
)


@pytest.mark.parametrize(
    ("runtime", "variable", "argv"),
    [
        ("python requests", "REQUESTS_CA_BUNDLE", [sys.executable, "-c", PY_REQUESTS]),
        ("openssl (python ssl)", "SSL_CERT_FILE", [sys.executable, "-c", PY_OPENSSL]),
        ("curl", "CURL_CA_BUNDLE", ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"]),
        ("node", "NODE_EXTRA_CA_CERTS", ["node", "-e", NODE_GET]),
    ],
)
def test_injected_variable_makes_the_runtime_trust_the_lab_ca(
    deployed, api, bundle_files, https_server, runtime, variable, argv
):
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    value = deployed_env(api, "demo-data-service", "data-service")[variable]
    without = subprocess.run(
        [*argv, https_server], env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert without.returncode != 0, f"{runtime} trusted the lab CA without the variable: {without.stdout}"
    env = clean_env(**{variable: as_local(value, bundle_files)})
    with_it = subprocess.run([*argv, https_server], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert with_it.returncode == 0, with_it.stderr
    assert "200" in with_it.stdout


GO_CLIENT = """package main

import (
\t"fmt"
\t"net/http"
\t"os"
)

func main() {
\tresp, err := http.Get(os.Args[1])
\tif err != nil {
\t\tfmt.Fprintln(os.Stderr, err)
\t\tos.Exit(1)
\t}
\tfmt.Println(resp.StatusCode)
}
"""


def test_go_client_trusts_the_lab_ca_with_ssl_cert_file(deployed, api, bundle_files, https_server, tmp_path):
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    (tmp_path / "main.go").write_text(GO_CLIENT)
    build = subprocess.run(
        ["go", "build", "-o", str(tmp_path / "client"), str(tmp_path / "main.go")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    value = deployed_env(api, "demo-gateway", "gateway")["SSL_CERT_FILE"]
    run = [str(tmp_path / "client"), https_server]
    without = subprocess.run(run, env=clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert without.returncode != 0
    assert "certificate" in without.stderr
    env = clean_env(SSL_CERT_FILE=as_local(value, bundle_files))
    with_it = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert with_it.returncode == 0, with_it.stderr
    assert with_it.stdout.strip() == "200"


def test_git_clone_from_the_lab_git_server_with_the_injected_setting(deployed, api, bundle_files, lab_env, tmp_path):
    if "LAB_GIT_URL" not in lab_env:
        pytest.skip("the lab git server is not part of this lab")
    url = f"{lab_env['LAB_GIT_URL']}/renku-python-template.git"
    value = deployed_env(api, "demo-gateway", "gateway")["GIT_SSL_CAINFO"]
    without = subprocess.run(
        ["git", "clone", "-q", url, str(tmp_path / "a")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert without.returncode != 0
    assert "certificate" in without.stderr
    env = clean_env(GIT_SSL_CAINFO=as_local(value, bundle_files))
    cloned = subprocess.run(
        ["git", "clone", "-q", url, str(tmp_path / "b")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "b" / ".gitlab-ci.yml").exists()


JAVA_CLIENT = """
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpResponse<String> response = HttpClient.newHttpClient()
            .send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("status " + response.statusCode());
    }
}
"""


def test_java_trust_store_from_the_init_container_script(deployed, api, bundle_files, https_server, tmp_path):
    if shutil.which("java") is None or shutil.which("keytool") is None:
        pytest.skip("java/keytool are not installed")
    spec = next(s for n, s in pod_templates(api) if n.endswith("/demo-keycloak"))
    init, main = spec["initContainers"][0], spec["containers"][0]
    store_dir = tmp_path / "java"
    init_env = {
        k: as_local(v, bundle_files).replace("/var/run/airgap-ca/java", str(store_dir)) for k, v in env_of(init).items()
    }
    script = as_local(init["command"][1], bundle_files)
    built = subprocess.run(
        ["sh", script], env=clean_env(**init_env), capture_output=True, text=True, timeout=120, check=False
    )
    assert built.returncode == 0, built.stderr
    assert "+ 1 custom CA(s)" in built.stdout
    (tmp_path / "Client.java").write_text(JAVA_CLIENT)
    options = env_of(main)["JAVA_TOOL_OPTIONS"].replace("/var/run/airgap-ca/java", str(store_dir))
    run = ["java", str(tmp_path / "Client.java"), https_server]
    without = subprocess.run(run, env=clean_env(), capture_output=True, text=True, timeout=180, check=False)
    assert without.returncode != 0
    assert "PKIX" in without.stderr or "certification path" in without.stderr
    with_it = subprocess.run(
        run, env=clean_env(JAVA_TOOL_OPTIONS=options), capture_output=True, text=True, timeout=180, check=False
    )
    assert with_it.returncode == 0, with_it.stderr
    assert "status 200" in with_it.stdout


# --------------------------------------------------------------------------------------------------
# Helm 3 post-renderers never see hooks; the Helm 4 plugin and the pipeline do


def post_renderer_config(tmp_path: Path, lab_env) -> Path:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "collections_path": str(ROOT / "build" / "collections"),
                "ca_pems": [Path(lab_env["LAB_CA"]).read_text()],
                "namespace": "demo",
            }
        )
    )
    return path


def hooks_and_regular(output: str) -> tuple[list[dict], list[dict]]:
    docs = [d for d in yaml.safe_load_all(output) if d]
    hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    regular = [d for d in docs if d not in hooks and d["kind"] in ("Deployment", "StatefulSet", "CronJob")]
    return hooks, regular


def first_container_env(doc: dict) -> dict[str, str]:
    spec = (
        doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        if doc["kind"] == "CronJob"
        else (doc["spec"].get("template", {}).get("spec") or doc["spec"])
    )
    return env_of(spec["containers"][0])


def test_helm3_post_renderer_leaves_hooks_unpatched_helm4_plugin_does_not(lab_env, tmp_path):
    helm3 = lab_env.get("HELM3", "")
    if not Path(helm3).exists():
        pytest.skip("helm3 is not built in this lab")
    cfg = post_renderer_config(tmp_path, lab_env)
    wrapper = tmp_path / "post-render.sh"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {PLUGIN_SRC} {cfg}\n")
    wrapper.chmod(0o755)
    env = clean_env(
        HELM_CACHE_HOME=str(tmp_path / "c"), HELM_CONFIG_HOME=str(tmp_path / "h"), HELM_DATA_HOME=str(tmp_path / "d")
    )
    v3 = subprocess.run(
        [helm3, "template", "demo", str(CHART), "--post-renderer", str(wrapper)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    hooks, regular = hooks_and_regular(v3.stdout)
    assert len(hooks) == 4 and regular
    assert all("REQUESTS_CA_BUNDLE" in first_container_env(d) for d in regular)
    assert all("REQUESTS_CA_BUNDLE" not in first_container_env(d) for d in hooks), "Helm 3 hooks unpatched"

    plugins = tmp_path / "plugins" / "airgap-ca-inject"
    plugins.mkdir(parents=True)
    shutil.copy(PLUGIN_SRC, plugins / "airgap-ca-inject.py")
    (plugins / "plugin.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "name": "airgap-ca-inject",
                "version": "0.1.0",
                "type": "postrenderer/v1",
                "runtime": "subprocess",
                "runtimeConfig": {
                    "platformCommand": [{"command": sys.executable, "args": ["${HELM_PLUGIN_DIR}/airgap-ca-inject.py"]}]
                },
            }
        )
    )
    v4 = subprocess.run(
        [
            lab_env["HELM"],
            "template",
            "demo",
            str(CHART),
            "--post-renderer",
            "airgap-ca-inject",
            "--post-renderer-args",
            str(cfg),
        ],
        env={**env, "HELM_PLUGINS": str(tmp_path / "plugins")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert v4.returncode == 0, v4.stderr
    hooks, regular = hooks_and_regular(v4.stdout)
    assert len(hooks) == 4
    assert all("REQUESTS_CA_BUNDLE" in first_container_env(d) for d in hooks + regular)


# --------------------------------------------------------------------------------------------------
# bad CA inputs


@pytest.mark.parametrize("kind", ["leaf", "private key"])
def test_bad_ca_is_refused_before_anything_is_applied(lab_env, api, tmp_path, kind):
    sys.path.insert(0, str(ROOT / "lab"))
    import labpki

    cert, key = labpki.LabCA(Path(lab_env["LAB_STATE"]) / "pki").issue(f"ca-inject-leaf-{WORKER}", "leaf.lab")
    bad = tmp_path / "bad.pem"
    bad.write_bytes(cert.read_bytes() if kind == "leaf" else key.read_bytes())
    namespace = f"ca-bad-{WORKER}-{uuid.uuid4().hex[:5]}"
    result = run_playbook(
        SCENARIOS / "helm_airgap" / "converge.yml",
        extra_vars={"helm_airgap_test_namespace": namespace, "helm_airgap_test_ca_file": str(bad)},
    )
    assert result.rc != 0
    expected = "is not a CA" if kind == "leaf" else "contains a private key"
    assert expected in result.output and "CA refused, nothing was transformed" in result.output
    assert str(bad) in result.output
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert namespace not in names and f"{namespace}-sessions" not in names


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_missing_mirror_lock_ends_a_check_run_and_stops_a_real_one(lab_env, api, tmp_path, check):
    """The mirror stage's lock is the hand-off: a real run without it stops naming the stage to run first; a check
    run (a fresh site, checked whole) says what waits for it and ends the role. Neither creates anything."""
    namespace = f"ca-nolock-{WORKER}-{uuid.uuid4().hex[:5]}"
    lock = tmp_path / "mirror-lock.yaml"
    result = run_playbook(
        SCENARIOS / "helm_airgap" / "converge.yml",
        check=check,
        extra_vars={"helm_airgap_test_namespace": namespace, "helm_airgap_image_lock_file": str(lock)},
    )
    said = " ".join(result.output.split())
    missing = f"mirror lock file {lock} does not exist; run the mirror stage first"
    assert missing in said, said[-3000:]
    if check:
        assert result.rc == 0, said[-3000:]
        assert f"check mode: release demo would be applied in namespace {namespace} once the mirror stage" in said
        assert [n.split(" : ")[-1] for n in result.changed_tasks()] == [
            "Report what a check run cannot predict before the mirror stage has run"
        ]
    else:
        assert result.rc != 0 and result.changed == 0, result.changed_tasks()
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert namespace not in names and f"{namespace}-sessions" not in names


def test_bundle_secret_carries_the_custom_ca(deployed, api, lab_env):
    secret = client.CoreV1Api(api).read_namespaced_secret("airgap-ca-bundle", f"{CURRENT['namespace']}-sessions")
    custom = base64.b64decode(secret.data["custom-ca.crt"]).decode()
    assert custom.strip() == Path(lab_env["LAB_CA"]).read_text().strip()


# --------------------------------------------------------------------------------------------------
# prune, and check mode, with the module_utils against the real API


def render_injected(lab_env, copies: int, namespace: str) -> list[dict]:
    sys.path.insert(0, str(ROOT / "build" / "collections"))
    from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject

    out = subprocess.run(
        [lab_env["HELM"], "template", "pr", str(CHART), "--namespace", namespace, "--set", f"copies={copies}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cas, _unused = ca.validate_cas([("lab", Path(lab_env["LAB_CA"]).read_text())])
    result = inject.inject(
        [d for d in yaml.safe_load_all(out) if d], cas, "", inject.InjectOptions(namespace=namespace)
    )
    return result["bundle"] + result["documents"]


def test_prune_removes_what_the_release_no_longer_renders(lab_env, api):
    from kubernetes.dynamic import DynamicClient

    from ansible_collections.airgap.renku.plugins.module_utils.platform import release

    namespace = f"ca-prune-{WORKER}-{uuid.uuid4().hex[:5]}"
    dynamic = DynamicClient(api)
    apps = client.AppsV1Api(api)
    try:
        first = release.ReleaseApplier(dynamic, "pr", namespace, "airgap-renku", wait_hooks=False)
        first.run(render_injected(lab_env, 2, namespace))
        assert apps.read_namespaced_deployment("pr-gateway-1", namespace)
        smaller = render_injected(lab_env, 1, namespace)
        check = release.ReleaseApplier(dynamic, "pr", namespace, "airgap-renku", check=True, wait_hooks=False)
        planned = check.run(smaller)
        assert f"apps/v1/Deployment/{namespace}/pr-gateway-1" in planned.pruned
        assert apps.read_namespaced_deployment("pr-gateway-1", namespace), "check mode deleted something"
        second = release.ReleaseApplier(dynamic, "pr", namespace, "airgap-renku", wait_hooks=False)
        outcome = second.run(smaller)
        assert f"apps/v1/Deployment/{namespace}/pr-gateway-1" in outcome.pruned
        assert f"v1/ConfigMap/{namespace}/pr-settings-1" in outcome.pruned
        assert outcome.phase == "upgrade"
        names = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
        deleting = {
            d.metadata.name for d in apps.list_namespaced_deployment(namespace).items if d.metadata.deletion_timestamp
        }
        assert "pr-gateway" in names
        assert "pr-gateway-1" not in names - deleting
        again = release.ReleaseApplier(dynamic, "pr", namespace, "airgap-renku", wait_hooks=False).run(smaller)
        assert not again.changed and again.pruned == []
    finally:
        with contextlib.suppress(client.ApiException):
            client.CoreV1Api(api).delete_namespace(namespace)


# --------------------------------------------------------------------------------------------------
# Helm 4's own path: helm upgrade --install with the transform as a post-renderer plugin


def test_helm4_post_renderer_mode_patches_hooks_and_is_idempotent(lab_env, tmp_path):
    namespace = f"ca-helm4-{WORKER}-{uuid.uuid4().hex[:5]}"
    extra = {
        "helm_airgap_test_namespace": namespace,
        "helm_airgap_test_mode": "helm",
        "helm_airgap_test_plugins_dir": str(tmp_path / "plugins"),
    }
    converge = SCENARIOS / "helm_airgap" / "converge.yml"
    env = clean_env(
        KUBECONFIG=lab_env["KUBECONFIG_LOCAL"],
        HELM_CACHE_HOME=str(tmp_path / "c"),
        HELM_CONFIG_HOME=str(tmp_path / "h"),
        HELM_DATA_HOME=str(tmp_path / "d"),
    )
    try:
        first = run_playbook(converge, extra_vars=extra)
        assert first.rc == 0, first.output[-3000:]
        second = run_playbook(converge, extra_vars=extra)
        assert second.rc == 0 and second.changed == 0, second.changed_tasks()
        hooks = subprocess.run(
            [lab_env["HELM"], "get", "hooks", "demo", "-n", namespace],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        hook_docs = [d for d in yaml.safe_load_all(hooks) if d and d["kind"] == "Job"]
        assert len(hook_docs) == 3
        assert all("REQUESTS_CA_BUNDLE" in first_container_env(d) for d in hook_docs)
        history = subprocess.run(
            [lab_env["HELM"], "history", "demo", "-n", namespace, "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert [r["revision"] for r in json.loads(history)] == [1]
    finally:
        subprocess.run(
            [lab_env["HELM"], "uninstall", "demo", "-n", namespace, "--wait=false"],
            env=env,
            capture_output=True,
            check=False,
        )
        core = client.CoreV1Api(config.new_client_from_config(lab_env["KUBECONFIG_LOCAL"]))
        for name in (namespace, f"{namespace}-sessions"):
            with contextlib.suppress(client.ApiException):
                core.delete_namespace(name)
