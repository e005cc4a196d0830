"""ca_inject: CA validation, the bundle, pod template patching per runtime, idempotence."""

from __future__ import annotations

import base64
import copy

import pytest
from certificates import make_cert

from ansible_collections.airgap.renku.plugins.module_utils.common import manifests
from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject, java, kaniko

ROOT_PEM, ROOT_KEY = make_cert("Site Root CA")
SYSTEM_PEM, _unused = make_cert("Public Root")


def cas() -> list[ca.CAInfo]:
    accepted, _unused = ca.validate_cas([("site", ROOT_PEM)])
    return accepted


def workloads() -> list[dict]:
    def pod(image: str, name: str = "main", **extra: object) -> dict:
        return {"containers": [{"name": name, "image": image, **extra}]}

    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {
                "template": {
                    "spec": {
                        "initContainers": [{"name": "migrate", "image": "python:3.12-slim"}],
                        "containers": [
                            {
                                "name": "api",
                                "image": "python:3.12-slim",
                                "env": [{"name": "REQUESTS_CA_BUNDLE", "value": "/custom/ca.pem"}],
                                # the chart supplies that file itself
                                "volumeMounts": [{"name": "custom-ca", "mountPath": "/custom"}],
                            }
                        ],
                        "volumes": [{"name": "custom-ca", "secret": {"secretName": "site-ca"}}],
                    }
                }
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "data"},
            "spec": {"template": {"spec": pod("postgres:16")}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "keycloak"},
            "spec": {
                "template": {
                    "spec": pod(
                        "quay.io/keycloak/keycloak:26.0.7",
                        "keycloak",
                        env=[{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx512m"}],
                    )
                }
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "cleanup"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod("golang:1.23")}}}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "db-init",
                "annotations": {"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "-5"},
            },
            "spec": {"template": {"spec": pod("busybox:1.36")}},
        },
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod("node:20-slim")},
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "ds"},
            "spec": {"template": {"spec": pod("golang:1.23")}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "rs"},
            "spec": {"template": {"spec": pod("golang:1.23")}},
        },
        {
            "apiVersion": "amalthea.dev/v1alpha1",
            "kind": "AmaltheaSession",
            "metadata": {"name": "s"},
            "spec": {"template": {"spec": pod("jupyter:1")}},
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": {"ports": [{"port": 80}]}},
    ]


def run(documents: list[dict], **kwargs: object) -> dict:
    options = inject.InjectOptions(
        namespace="renku", extra_paths={"AmaltheaSession": [("spec", "template", "spec")]}, **kwargs
    )
    return inject.inject(documents, cas(), SYSTEM_PEM, options)


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def spec_of(result: dict, name: str) -> dict:
    doc = next(d for d in result["documents"] if d["metadata"]["name"] == name)
    for ref in manifests.pod_specs(doc, {"AmaltheaSession": [("spec", "template", "spec")]}):
        return ref.spec
    raise AssertionError(name)


# --------------------------------------------------------------------------------------------------
# validation


def test_valid_ca_is_accepted_with_its_fingerprint():
    accepted, warnings = ca.validate_cas([("site", ROOT_PEM)])
    assert [c.subject for c in accepted] == ["CN=Site Root CA"]
    assert len(accepted[0].sha256) == 64
    assert warnings == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a certificate at all", "no PEM certificate found"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "does not parse"),
        (ROOT_KEY, "contains a private key"),
        (ROOT_PEM + ROOT_KEY, "contains a private key"),
        (make_cert("www.site.internal", ca=False)[0], "is not a CA"),
        (make_cert("Old Root", days=-1, start_days=-30)[0], "expired on"),
        (make_cert("Future Root", start_days=5)[0], "is not valid before"),
        (make_cert("No Sign", key_cert_sign=False)[0], "may not sign certificates"),
    ],
)
def test_bad_ca_inputs_are_refused_naming_the_input(text, message):
    with pytest.raises(ca.CAError, match=message) as info:
        ca.validate_cas([("ca_files[0] (/tmp/x.crt)", text)])
    assert str(info.value).startswith("ca_files[0] (/tmp/x.crt)")


def test_near_expiry_and_missing_key_usage_warn():
    soon, _unused = make_cert("Soon Root", days=10)
    plain, _unused = make_cert("Plain Root", key_usage=False)
    accepted, warnings = ca.validate_cas([("a", soon), ("b", plain)], warn_days=30)
    assert len(accepted) == 2
    assert any("expires in" in w and w.startswith("a:") for w in warnings)
    assert any("no keyUsage" in w and w.startswith("b:") for w in warnings)


def test_a_file_with_two_cas_yields_both():
    other, _unused = make_cert("Intermediate CA")
    accepted, _unused = ca.validate_cas([("chain", ROOT_PEM + other)])
    assert [c.source for c in accepted] == ["chain (certificate 1)", "chain (certificate 2)"]


def test_no_ca_at_all_is_refused():
    with pytest.raises(ca.CAError, match="no CA given"):
        ca.validate_cas([])


# --------------------------------------------------------------------------------------------------
# bundle


def test_bundle_is_system_roots_plus_custom_without_duplicates():
    full, custom = ca.build_bundle(cas() + cas(), SYSTEM_PEM)
    assert full.count("BEGIN CERTIFICATE") == 2
    assert full.index(SYSTEM_PEM.strip()) < full.index(ROOT_PEM.strip())
    assert custom.count("BEGIN CERTIFICATE") == 1
    full_again, _unused = ca.build_bundle(cas(), SYSTEM_PEM + ROOT_PEM)
    assert full_again.count("BEGIN CERTIFICATE") == 2


def test_bundle_objects_in_every_namespace_involved():
    result = run(workloads(), extra_namespaces=("renku-sessions",))
    where = sorted((o["kind"], o["metadata"]["namespace"]) for o in result["bundle"])
    assert where == [
        ("ConfigMap", "data"),
        ("ConfigMap", "renku"),
        ("ConfigMap", "renku-sessions"),
        ("Secret", "data"),
        ("Secret", "renku"),
        ("Secret", "renku-sessions"),
    ]
    secret = next(o for o in result["bundle"] if o["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["custom-ca.crt"]).decode() == ROOT_PEM
    config_map = next(o for o in result["bundle"] if o["kind"] == "ConfigMap")
    assert "keytool -importcert" in config_map["data"][java.JAVA_SCRIPT_KEY]
    assert SYSTEM_PEM in config_map["data"][ca.BUNDLE_KEY]


# --------------------------------------------------------------------------------------------------
# patching


def test_every_pod_template_of_every_kind_is_patched_hooks_and_crds_included():
    result = run(workloads())
    patched = {entry["workload"] for entry in result["report"]}
    assert patched == {
        "Deployment/api",
        "StatefulSet/data/db",
        "Deployment/keycloak",
        "CronJob/cleanup",
        "Job/db-init",
        "Pod/p",
        "DaemonSet/ds",
        "ReplicaSet/rs",
        "AmaltheaSession/s",
    }
    hook = next(e for e in result["report"] if e["workload"] == "Job/db-init")
    assert hook["hook"] == "pre-install"
    assert result["modified"] is True


def test_default_runtimes_set_every_variable_and_mount_the_bundle():
    spec = spec_of(run(workloads()), "cleanup")
    container = spec["containers"][0]
    assert env_of(container) == {
        "SSL_CERT_FILE": "/etc/airgap-ca/ca-bundle.crt",
        "CURL_CA_BUNDLE": "/etc/airgap-ca/ca-bundle.crt",
        "REQUESTS_CA_BUNDLE": "/etc/airgap-ca/ca-bundle.crt",
        "GIT_SSL_CAINFO": "/etc/airgap-ca/ca-bundle.crt",
        "NODE_EXTRA_CA_CERTS": "/etc/airgap-ca/custom-ca.crt",
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": "/etc/airgap-ca/ca-bundle.crt",
        "PIP_CERT": "/etc/airgap-ca/ca-bundle.crt",
        "AWS_CA_BUNDLE": "/etc/airgap-ca/ca-bundle.crt",
    }
    assert {"name": "airgap-ca-bundle", "mountPath": "/etc/airgap-ca", "readOnly": True} in container["volumeMounts"]
    assert {"name": "airgap-ca-bundle", "configMap": {"name": "airgap-ca-bundle"}} in spec["volumes"]


def test_init_containers_are_patched_and_existing_values_kept():
    result = run(workloads())
    spec = spec_of(result, "api")
    assert env_of(spec["initContainers"][0])["REQUESTS_CA_BUNDLE"] == "/etc/airgap-ca/ca-bundle.crt"
    assert env_of(spec["containers"][0])["REQUESTS_CA_BUNDLE"] == "/custom/ca.pem"
    entry = next(e for e in result["report"] if e["workload"] == "Deployment/api")
    api = next(c for c in entry["containers"] if c["name"] == "api")
    assert api["kept"] == ["REQUESTS_CA_BUNDLE"]


def test_a_variable_naming_a_file_of_the_image_is_replaced():
    """Renku sets REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt; without its /etc/ssl/certs volume that
    file is the image's own bundle, which cannot hold the private CA."""
    container = {
        "name": "worker",
        "image": "renku/init-db:2.19.3",
        "env": [
            {"name": "REQUESTS_CA_BUNDLE", "value": "/etc/ssl/certs/ca-certificates.crt"},
            {"name": "SSL_CERT_FILE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        ],
    }
    mounted = {
        **container,
        "name": "served",
        "volumeMounts": [{"name": "etc-ssl-certs", "mountPath": "/etc/ssl/certs/"}],
    }
    doc = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "setup"},
        "spec": {
            "template": {
                "spec": {"containers": [container, mounted], "volumes": [{"name": "etc-ssl-certs", "emptyDir": {}}]}
            }
        },
    }
    result = run([doc])
    worker, served = result["documents"][0]["spec"]["template"]["spec"]["containers"]
    assert env_of(worker)["REQUESTS_CA_BUNDLE"] == "/etc/airgap-ca/ca-bundle.crt"
    assert env_of(served)["REQUESTS_CA_BUNDLE"] == "/etc/ssl/certs/ca-certificates.crt"
    (entry,) = result["report"]
    by_name = {c["name"]: c for c in entry["containers"]}
    assert by_name["worker"]["replaced"] == ["REQUESTS_CA_BUNDLE"]
    assert "SSL_CERT_FILE" in by_name["worker"]["kept"]  # valueFrom: the chart decides
    assert by_name["served"]["replaced"] == [] and "REQUESTS_CA_BUNDLE" in by_name["served"]["kept"]
    again = run(result["documents"])
    assert again["modified"] is False


def test_overwrite_replaces_existing_values():
    spec = spec_of(run(workloads(), overwrite=True), "api")
    assert env_of(spec["containers"][0])["REQUESTS_CA_BUNDLE"] == "/etc/airgap-ca/ca-bundle.crt"


def test_java_gets_init_container_trust_store_and_tool_options():
    spec = spec_of(run(workloads()), "keycloak")
    init = spec["initContainers"][0]
    assert init["name"] == "airgap-ca-java-keycloak"
    assert init["image"] == "quay.io/keycloak/keycloak:26.0.7"
    assert init["command"] == ["sh", "/etc/airgap-ca/build-java-truststore.sh"]
    options = env_of(spec["containers"][0])["JAVA_TOOL_OPTIONS"]
    assert options.startswith("-Xmx512m ")
    assert "-Djavax.net.ssl.trustStore=/var/run/airgap-ca/java/keycloak/cacerts" in options
    assert {"name": "airgap-ca-java", "emptyDir": {}} in spec["volumes"]


def test_java_init_container_runs_before_the_charts_own():
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "j"},
        "spec": {
            "initContainers": [{"name": "wait", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": "eclipse-temurin:21-jre"}],
        },
    }
    spec = run([doc])["documents"][0]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["airgap-ca-java-app", "wait"]
    assert "JAVA_TOOL_OPTIONS" not in env_of(spec["initContainers"][1])


def test_selectors_choose_runtimes_and_exclude():
    selectors = [
        {"image": r"(^|/)postgres[:@]", "exclude": True},
        {"workload": "^p$", "runtimes": ["node"]},
        {"kind": "DaemonSet", "container": "main", "runtimes": ["java"]},
    ]
    result = run(workloads(), selectors=selectors)
    assert "StatefulSet/data/db" not in {e["workload"] for e in result["report"]}
    assert set(env_of(spec_of(result, "p")["containers"][0])) == {"NODE_EXTRA_CA_CERTS"}
    ds = spec_of(result, "ds")
    assert set(env_of(ds["containers"][0])) == {"JAVA_TOOL_OPTIONS"}
    assert ds["initContainers"][0]["name"] == "airgap-ca-java-main"
    assert [o["metadata"]["namespace"] for o in result["bundle"]] == ["renku", "renku"]


def test_transform_of_its_own_output_is_identity():
    first = run(workloads())
    second = run(first["documents"] + first["bundle"])
    assert second["documents"] == first["documents"]
    assert second["bundle"] == first["bundle"]
    assert second["modified"] is False
    assert all(not e["changed"] for e in second["report"])


def test_input_documents_are_not_mutated():
    docs = workloads()
    before = copy.deepcopy(docs)
    run(docs)
    assert docs == before


def test_value_from_java_options_is_kept():
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "j"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "openjdk:17",
                    "env": [{"name": "JAVA_TOOL_OPTIONS", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}],
                }
            ]
        },
    }
    result = run([doc])
    assert result["report"][0]["containers"][0]["kept"] == ["JAVA_TOOL_OPTIONS"]


def test_image_build_dockerfile_and_kaniko_job():
    build = kaniko.ca_image_build(
        "reg.internal/jupyterhub/k8s-hub:4.0.0",
        "reg.internal/site/k8s-hub:4.0.0-ca",
        ROOT_PEM,
        "reg.internal/kaniko/executor:v1.23.2",
        "builds",
        "push",
        "airgap-ca-bundle",
        user="jovyan",
    )
    assert build["dockerfile"].splitlines() == [
        "FROM reg.internal/jupyterhub/k8s-hub:4.0.0",
        "USER root",
        "COPY custom-ca.crt /usr/local/share/ca-certificates/airgap-custom-ca.crt",
        "RUN update-ca-certificates",
        "USER jovyan",
    ]
    context, job = build["objects"]
    assert context["data"]["custom-ca.crt"] == ROOT_PEM
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "--destination=reg.internal/site/k8s-hub:4.0.0-ca" in container["args"]
    assert any(m["mountPath"] == "/kaniko/ssl/certs/additional-ca-cert-bundle.crt" for m in container["volumeMounts"])


def test_a_selected_ephemeral_container_is_patched_on_a_copy():
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "e"},
        "spec": {
            "containers": [{"name": "app", "image": "python:3.12"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox:1.36"}],
        },
    }
    before = copy.deepcopy(doc)
    result = run([doc], selectors=[{"container": "^debug$", "runtimes": ["openssl"]}])
    debug = result["documents"][0]["spec"]["ephemeralContainers"][0]
    assert set(env_of(debug)) == {"SSL_CERT_FILE", "CURL_CA_BUNDLE"}
    assert doc == before


def test_one_option_mapping_for_the_module_and_the_post_renderer():
    options = inject.options_from(
        {
            "namespace": "renku",
            "runtimes": ["python"],
            "pod_spec_paths": ["AmaltheaSession:spec.template.spec"],
            "selectors": None,  # a null setting takes the default, as the module's argspec does
            "collections_path": "/ignored",
        }
    )
    assert options.namespace == "renku" and options.runtimes == ("python",)
    assert options.extra_paths == {"AmaltheaSession": [("spec", "template", "spec")]}
    assert options.selectors == [] and options.emit_bundle is True
    with pytest.raises(ValueError, match=r"Kind:spec\.path\.to\.podspec"):
        inject.options_from({"pod_spec_paths": ["no-kind"]})
