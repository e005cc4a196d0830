"""YAML as Kubernetes reads it, and null lists/maps treated as empty, through the public entry points.

The snippets have the shapes that broke the collection on the real Renku 2.19.3 chart and the
kube-prometheus CRDs: a blank `initContainers:`, blank `env:`/`volumeMounts:`/`volumes:`, a blank
`annotations:` on a hook, an unquoted `- =` enum item, unquoted timestamps, a Secret `KEY:` without
a value.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from certificates import make_cert

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml, manifests
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
    Discovered,
    load_manifest_file,
    scan_documents,
)
from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject, release
from ansible_collections.airgap.renku.plugins.modules import ca_inject

ROOT = Path(__file__).resolve().parents[2]
POST_RENDERER = ROOT / "roles" / "helm_airgap" / "files" / "airgap-ca-inject.py"

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: alertmanagerconfigs.monitoring.coreos.com
  annotations:
    controller-gen.kubebuilder.io/version: v0.16.1
    operator.prometheus.io/released: 2024-01-01T00:00:00Z
spec:
  versions:
  - name: v1alpha1
    schema:
      openAPIV3Schema:
        properties:
          matchType:
            enum:
            - "!="
            - =
            - =~
            - "!~"
            type: string
"""

SOLR = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: renku-solr
  namespace: renku
  annotations:
spec:
  template:
    metadata:
      labels:
    spec:
      initContainers:
      containers:
      - name: solr
        image: docker.io/bitnami/solr:9
        env:
        envFrom:
        args:
        volumeMounts:
      volumes:
"""

HOOK = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: renku-db-init
  annotations:
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: init
        image: docker.io/renku/data-service:0.40.0
        args:
        env:
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: renku-secrets
  labels:
  annotations:
stringData:
  A:
  B: set
"""


def make_ca() -> str:
    return make_cert("Kube YAML Test Root")[0]


CA_PEM = make_ca()


def inject_site_ca(documents: list) -> dict:
    cas, _warnings = ca.validate_cas([("site", CA_PEM)])
    return inject.inject(documents, cas, "", inject.InjectOptions(namespace="renku"))


def pod_spec(document: dict) -> dict:
    return next(manifests.pod_specs(document)).spec


def env_names(container: dict) -> list[str]:
    return [e["name"] for e in container["env"]]


# --------------------------------------------------------------------------------------------------
# the loader


def test_unquoted_equals_in_an_enum_is_a_string():
    crd = kube_yaml.load_one(CRD)
    enum = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["matchType"]["enum"]
    assert enum == ["!=", "=", "=~", "!~"]


def test_pyyaml_itself_is_left_as_it_was():
    with pytest.raises(yaml.constructor.ConstructorError, match=r"tag:yaml\.org,2002:value"):
        yaml.safe_load(CRD)
    assert isinstance(yaml.safe_load("t: 2024-01-01T00:00:00Z")["t"], dt.datetime)


def test_timestamps_and_base_60_numbers_stay_strings():
    data = kube_yaml.load_one("t: 2024-01-01T00:00:00Z\nd: 2024-01-01\nclock: 10:30\nf: 1:20.5\n")
    assert data == {"t": "2024-01-01T00:00:00Z", "d": "2024-01-01", "clock": "10:30", "f": "1:20.5"}
    annotations = kube_yaml.load_one(CRD)["metadata"]["annotations"]
    assert annotations["operator.prometheus.io/released"] == "2024-01-01T00:00:00Z"
    json.dumps(annotations)  # what Ansible does with a module result


def test_other_scalars_keep_their_types():
    data = kube_yaml.load_one("i: 42\no: 0755\nh: 0x1f\nu: 1_000\nf: 1.5\nb: true\ny: yes\nn: null\nblank:\ns: '42'\n")
    expected = {"i": 42, "o": 493, "h": 31, "u": 1000, "f": 1.5, "b": True, "y": True, "n": None, "blank": None}
    assert data == {**expected, "s": "42"}


def test_documents_null_and_empty_ones_dropped():
    text = "---\n---\n{}\n---\nkind: A\n---\n# only a comment\n---\nkind: B\n...\n"
    assert kube_yaml.load_documents(text) == [{"kind": "A"}, {"kind": "B"}]
    assert kube_yaml.load_one("") is None


def test_errors_keep_line_and_column_and_the_source_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: A\nmetadata:\n  name: [x\n  labels: {}\n")
    with pytest.raises(kube_yaml.KubeYAMLError) as info, bad.open(encoding="utf-8") as handle:
        kube_yaml.load_documents(handle)
    assert str(info.value).startswith(f"{bad}: line ")
    assert info.value.line is not None and info.value.line >= 3
    assert info.value.column is not None
    with pytest.raises(kube_yaml.KubeYAMLError, match=r"^values: line 2, column 1: .*single document"):
        kube_yaml.load_one("a: 1\n---\nb: 2\n", "values")


def test_dumped_strings_read_back_as_strings_by_any_reader():
    data = {"enum": ["!=", "=", "=~", "!~"], "t": "2024-01-01T00:00:00Z", "clock": "10:30", "empty": ""}
    text = kube_yaml.dump_one(data, sort_keys=False)
    assert yaml.safe_load(text) == data
    assert kube_yaml.load_one(text) == data
    stream = kube_yaml.dump_documents([data, {"kind": "B"}])
    assert kube_yaml.load_documents(stream) == [data, {"kind": "B"}]


# --------------------------------------------------------------------------------------------------
# ca_inject: null lists and maps


def test_blank_init_containers_of_a_java_statefulset_get_our_init_container_first():
    documents = kube_yaml.load_documents(SOLR)
    before = copy.deepcopy(documents)
    result = inject_site_ca(documents)
    spec = pod_spec(result["documents"][0])
    assert [c["name"] for c in spec["initContainers"]] == ["airgap-ca-java-solr"]
    solr = spec["containers"][0]
    assert {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "JAVA_TOOL_OPTIONS"} <= set(env_names(solr))
    assert [m["name"] for m in solr["volumeMounts"]] == ["airgap-ca-bundle", "airgap-ca-java"]
    assert [v["name"] for v in spec["volumes"]] == ["airgap-ca-bundle", "airgap-ca-java"]
    assert solr["envFrom"] is None and solr["args"] is None  # untouched fields stay as rendered
    assert documents == before, "the input documents are not modified"


def test_second_pass_over_the_output_changes_nothing():
    first = inject_site_ca(kube_yaml.load_documents(SOLR + "---\n" + HOOK))
    second = inject_site_ca(first["documents"] + first["bundle"])
    assert second["documents"] == first["documents"]
    assert second["bundle"] == first["bundle"]
    assert second["modified"] is False


def test_a_java_init_container_goes_before_blank_and_existing_items():
    text = SOLR.replace(
        "      initContainers:\n", "      initContainers:\n      - name: wait\n        image: busybox\n"
    )
    spec = pod_spec(inject_site_ca(kube_yaml.load_documents(text))["documents"][0])
    assert [c["name"] for c in spec["initContainers"]] == ["airgap-ca-java-solr", "wait"]


def test_hook_with_blank_annotations_is_patched_like_any_job():
    result = inject_site_ca(kube_yaml.load_documents(HOOK))
    entry = result["report"][0]
    assert (entry["workload"], entry["hook"]) == ("Job/renku-db-init", None)
    container = pod_spec(result["documents"][0])["containers"][0]
    assert "REQUESTS_CA_BUNDLE" in env_names(container)


def test_blank_metadata_and_null_names_do_not_break_selectors():
    text = "kind: Pod\nmetadata:\nspec:\n  containers:\n  - name:\n    image: python:3.12\n  -\n"
    options = inject.InjectOptions(selectors=[{"workload": "^$", "container": "^$", "runtimes": ["python"]}])
    cas, _warnings = ca.validate_cas([("site", CA_PEM)])
    result = inject.inject(kube_yaml.load_documents(text), cas, "", options)
    assert result["report"][0]["workload"] == "Pod/<unnamed>"
    assert env_names(result["documents"][0]["spec"]["containers"][0]) == ["REQUESTS_CA_BUNDLE"]


def test_ca_inject_module_reads_manifest_text_as_kubernetes_does():
    manifest = CRD + "---\n---\n" + SOLR
    module = SimpleNamespace(params={"documents": None, "src": None, "manifest": manifest}, fail_json=pytest.fail)
    documents = ca_inject._documents(module)
    assert [d["kind"] for d in documents] == ["CustomResourceDefinition", "StatefulSet"]
    module.params.update(documents=[None, {}, *documents], manifest=None)
    assert ca_inject._documents(module) == documents
    result = inject_site_ca(documents)
    assert len(release.release_digest(result["bundle"] + result["documents"] + [None])) == 64


def test_post_renderer_reads_and_writes_the_renku_shapes(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"collections_path": str(ROOT / "build" / "collections"), "ca_pems": [CA_PEM]}))
    rendered = subprocess.run(
        [sys.executable, str(POST_RENDERER), str(config)],
        input=CRD + "---\n" + SOLR,
        capture_output=True,
        text=True,
        check=True,
    )
    # the CRD holds no pod template: it goes back to Helm as rendered, so it reads as Helm (go-yaml) reads it
    assert CRD.rstrip("\n") + "\n" in rendered.stdout
    crd, solr = kube_yaml.load_documents(rendered.stdout)
    enum = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["matchType"]["enum"]
    assert enum == ["!=", "=", "=~", "!~"]
    assert crd["metadata"]["annotations"]["operator.prometheus.io/released"] == "2024-01-01T00:00:00Z"
    assert pod_spec(solr)["initContainers"][0]["name"] == "airgap-ca-java-solr"


# --------------------------------------------------------------------------------------------------
# image discovery


def test_manifest_file_with_the_renku_shapes_is_scanned(tmp_path):
    path = tmp_path / "renku.yaml"
    path.write_text("---\n".join([CRD, SOLR, HOOK, SECRET]))
    documents = load_manifest_file(str(path))
    assert len(documents) == 4
    found = Discovered()
    scan_documents(documents, found, [], [])
    assert set(found.images) == {"docker.io/bitnami/solr:9", "docker.io/renku/data-service:0.40.0"}
    assert not found.candidates and not found.warnings


# --------------------------------------------------------------------------------------------------
# release_apply


def test_null_string_data_is_applied_as_empty_strings():
    secret = kube_yaml.load_one(SECRET)
    body = release.label_for_release(secret, "renku", "renku", True)
    assert body["stringData"] == {"A": "", "B": "set"}
    assert body["metadata"] == {
        "name": "renku-secrets",
        "namespace": "renku",
        "labels": {release.RELEASE_LABEL: "renku"},
    }
    assert secret["stringData"] == {"A": None, "B": "set"}, "the input document is not modified"


def test_null_values_in_string_maps_become_empty_and_null_maps_go():
    config_map = kube_yaml.load_one("kind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    a:\ndata:\n  k:\n")
    assert release.null_strings_as_empty(config_map) == {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": {"a": ""}},
        "data": {"k": ""},
    }
    secret = kube_yaml.load_one("kind: Secret\nmetadata:\n  name: s\ndata:\nstringData:\n")
    assert release.null_strings_as_empty(secret) == {"kind": "Secret", "metadata": {"name": "s"}}


def test_release_digest_and_hooks_with_null_fields():
    documents = kube_yaml.load_documents("---\n".join([SECRET, HOOK, SOLR, "kind: Pod\nmetadata:\n"]))
    rotated = copy.deepcopy(documents)
    rotated[0]["stringData"] = {"A": "x", "B": "y"}
    assert release.release_digest(documents) == release.release_digest(rotated)
    regular, hooks = release.split_hooks(documents)
    assert (len(regular), hooks) == (4, [])
    assert [d["kind"] for d in release.sort_for_install(documents)] == ["Secret", "Pod", "StatefulSet", "Job"]
    assert release.masked({"kind": "Secret", "data": None})["data"] == {}


def test_hook_with_blank_weight_and_policy_uses_helm_defaults():
    text = "kind: Job\nmetadata:\n  name: j\n  annotations:\n    helm.sh/hook: pre-install\n"
    text += "    helm.sh/hook-weight:\n    helm.sh/hook-delete-policy:\n"
    _regular, hooks = release.split_hooks(kube_yaml.load_documents(text))
    assert (hooks[0].events, hooks[0].weight, hooks[0].delete_policies) == (
        ("pre-install",),
        0,
        ("before-hook-creation",),
    )
