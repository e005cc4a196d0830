"""release_apply's pure parts: hook selection and order, install order, the release digest, masking."""

from __future__ import annotations

from ansible_collections.airgap.renku.plugins.module_utils.platform import release


def job(name: str, hook: str | None = None, weight: str | None = None, policy: str | None = None) -> dict:
    annotations = {}
    if hook:
        annotations["helm.sh/hook"] = hook
    if weight is not None:
        annotations["helm.sh/hook-weight"] = weight
    if policy:
        annotations["helm.sh/hook-delete-policy"] = policy
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "annotations": annotations}}


def test_hooks_are_split_and_ordered_by_weight_kind_and_name():
    docs = [
        job("b", "pre-install,pre-upgrade", "5"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {"helm.sh/hook": "pre-install"}},
        },
        job("a", "pre-install", "5"),
        job("first", "pre-install", "-10"),
        job("post", "post-install", policy="hook-succeeded"),
        job("regular"),
        job("test", "test"),
    ]
    regular, hooks = release.split_hooks(docs)
    assert [d["metadata"]["name"] for d in regular] == ["regular"]
    order = [h.document["metadata"]["name"] for h in release.hooks_for(hooks, "pre-install")]
    assert order == ["first", "c", "a", "b"]
    assert [h.document["metadata"]["name"] for h in release.hooks_for(hooks, "pre-upgrade")] == ["b"]
    post = release.hooks_for(hooks, "post-install")[0]
    assert post.delete_policies == ("hook-succeeded",)
    assert release.hooks_for(hooks, "pre-install")[0].delete_policies == ("before-hook-creation",)


def test_install_order_follows_helm():
    docs = [
        {"apiVersion": "v1", "kind": k, "metadata": {"name": k.lower()}}
        for k in ("Deployment", "Widget", "Service", "Secret", "Namespace", "CronJob")
    ]
    assert [d["kind"] for d in release.sort_for_install(docs)] == [
        "Namespace",
        "Secret",
        "Service",
        "Deployment",
        "CronJob",
        "Widget",
    ]


def test_digest_ignores_regenerated_secret_values_but_not_the_bundle():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "YWJj"}}
    rotated = {**secret, "data": {"password": "eHl6"}}
    assert release.release_digest([secret]) == release.release_digest([rotated])
    bundle = {**secret, "metadata": {"name": "b", "annotations": {"airgap.renku/always-apply": "true"}}}
    assert release.release_digest([bundle]) != release.release_digest([{**bundle, "data": {"x": "eHl6"}}])
    assert release.release_digest([secret, job("a")]) == release.release_digest([job("a"), secret])


def test_labels_and_namespaces():
    doc = release.label_for_release({"kind": "Deployment", "metadata": {"name": "d"}}, "demo", "ns", True)
    assert doc["metadata"] == {"name": "d", "namespace": "ns", "labels": {"airgap.renku/release": "demo"}}
    cluster = release.label_for_release(
        {"kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}}, "demo", "ns", False
    )
    assert "namespace" not in cluster["metadata"]


def test_diff_masks_secrets_and_shortens_bundles():
    secret = {"kind": "Secret", "data": {"password": "c2VjcmV0"}}
    assert release.masked(secret)["data"] == {"password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
    config_map = {"kind": "ConfigMap", "data": {"ca-bundle.crt": "x" * 5000, "small": "y"}}
    shown = release.masked(config_map)["data"]
    assert shown["small"] == "y"
    assert shown["ca-bundle.crt"].startswith("<5000 bytes, sha256 ")


def test_normalise_drops_server_bookkeeping():
    live = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "7", "managedFields": [], "uid": "u"},
        "status": {},
        "data": {"a": "b"},
    }
    assert release.normalise(live) == {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
