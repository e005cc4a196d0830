from __future__ import annotations

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.common import manifests


def _pod(image: str) -> dict:
    return {
        "initContainers": [{"name": "init", "image": image + "-init"}],
        "containers": [{"name": "c", "image": image}],
    }


def test_pod_specs_of_every_builtin_kind():
    docs = [
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": _pod("a")},
        {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": _pod("b")}}},
        {
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": _pod("c")}}}},
        },
        {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}},
    ]
    found = [(ref.document["kind"], ref.path) for doc in docs for ref in manifests.pod_specs(doc)]
    assert found == [
        ("Pod", "spec"),
        ("Deployment", "spec.template.spec"),
        ("CronJob", "spec.jobTemplate.spec.template.spec"),
    ]


def test_crd_paths_and_containers():
    kind, keys = manifests.parse_crd_path("AmaltheaSession:spec.template.spec")
    doc = {"kind": "AmaltheaSession", "spec": {"template": {"spec": _pod("s")}}}
    refs = list(manifests.pod_specs(doc, {kind: [keys]}))
    assert len(refs) == 1
    assert [(lst, c["image"]) for lst, c in manifests.containers(refs[0].spec)] == [
        ("initContainers", "s-init"),
        ("containers", "s"),
    ]


@pytest.mark.parametrize("bad", ["Kind", ":spec", "Kind:", "Kind:..."])
def test_crd_path_errors_name_the_format(bad):
    with pytest.raises(ValueError, match=r"Kind:spec\.path\.to\.podspec"):
        manifests.parse_crd_path(bad)


def test_hooks_and_names():
    doc = {"kind": "Job", "metadata": {"name": "j", "namespace": "n", "annotations": {"helm.sh/hook": "pre-install"}}}
    assert manifests.is_helm_hook(doc)
    assert manifests.document_name(doc) == "Job/n/j"
    assert not manifests.is_helm_hook({"kind": "Job", "metadata": {"name": "j"}})


def test_list_and_map_fields_read_null_as_empty_and_store_what_they_return():
    obj = {"env": None, "annotations": None, "args": ["a"]}
    env = manifests.list_field(obj, "env")
    env.append({"name": "X"})
    manifests.map_field(obj, "annotations")["a"] = "b"
    manifests.list_field(obj, "volumes").append("v")
    assert obj == {"env": [{"name": "X"}], "annotations": {"a": "b"}, "args": ["a"], "volumes": ["v"]}
    assert manifests.list_field(obj, "args") is obj["args"]


def test_metadata_readers_never_write():
    doc = {"kind": "Job", "metadata": None}
    assert manifests.metadata_of(doc) == {} and manifests.annotations_of(doc) == {}
    assert manifests.document_name(doc) == "Job/<unnamed>"
    assert not manifests.is_helm_hook({"kind": "Job", "metadata": {"name": "j", "annotations": None}})
    assert doc == {"kind": "Job", "metadata": None}
