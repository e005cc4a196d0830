"""Lock file consumers: values overlay, manifest rewrite, runtime mirror config, pull secrets, OCI versions."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import ChartMirrorError, oci_version
from ansible_collections.airgap.renku.plugins.module_utils.mirror.outputs import (
    LockError,
    attach_pull_secret,
    containerd_hosts,
    crio_registries_conf,
    pull_secret,
    resolve_image,
    rewrite_documents,
    values_overlay,
)

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
LOCK = {
    "apiVersion": "airgap.renku/v1",
    "kind": "MirrorLock",
    "images": [
        {
            "source": "docker.io/library/busybox:1.36",
            "destination": "reg.site:5000/mirror/docker.io/library/busybox:1.36",
            "digest": D1,
            "platforms": {"linux/amd64": D2},
        },
        {
            "source": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
            "destination": "reg.site:5000/mirror/quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
            "digest": D2,
            "platforms": {},
        },
    ],
}
BUSYBOX = f"reg.site:5000/mirror/docker.io/library/busybox@{D1}"
OAUTH = f"reg.site:5000/mirror/quay.io/oauth2-proxy/oauth2-proxy@{D2}"


def test_resolve_image_accepts_short_names():
    assert resolve_image(LOCK, "busybox:1.36") == BUSYBOX
    with pytest.raises(LockError, match="not in the mirror lock"):
        resolve_image(LOCK, "busybox:1.37")


def test_values_overlay_strings_lists_and_maps():
    values = {
        "images": ["busybox:1.36", "docker.io/library/alpine:3.20"],
        "proxy": {"image": {"registry": "quay.io", "repository": "oauth2-proxy/oauth2-proxy", "tag": "v7.6.0"}},
        "sidecar": {"image": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", "pullPolicy": "IfNotPresent"},
        "replicas": 2,
    }
    overlay, used = values_overlay(values, LOCK)
    # lists are replaced whole by Helm: unknown items are carried unchanged
    assert overlay["images"] == [BUSYBOX, "docker.io/library/alpine:3.20"]
    assert overlay["proxy"]["image"] == {
        "registry": "reg.site:5000",
        "repository": "mirror/quay.io/oauth2-proxy/oauth2-proxy",
        "tag": "v7.6.0",
        "digest": D2,
    }
    assert overlay["sidecar"] == {"image": OAUTH}
    assert "replicas" not in overlay
    assert used == ["docker.io/library/busybox:1.36", "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"]


def test_values_overlay_redirects_a_global_image_registry():
    values = {
        "global": {"imageRegistry": "docker.io"},
        "images": {"busybox": "library/busybox:1.36", "proxy": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"},
    }
    overlay, used = values_overlay(values, LOCK)
    # relative references stay (the chart prefixes them); the registry moves to the mirror's docker.io base
    assert overlay == {"global": {"imageRegistry": "reg.site:5000/mirror/docker.io"}, "images": {"proxy": OAUTH}}
    assert used == ["docker.io/library/busybox:1.36", "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"]


def test_rewrite_documents_pins_every_container_and_reports_missing():
    doc = {
        "kind": "CronJob",
        "metadata": {"name": "x"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                            "containers": [{"name": "c", "image": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"}],
                        }
                    }
                }
            }
        },
    }
    (out,) = rewrite_documents([doc], LOCK)
    spec = out["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == BUSYBOX
    assert spec["containers"][0]["image"] == OAUTH
    assert doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith("quay.io")
    bad = {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
    with pytest.raises(LockError, match="nginx"):
        rewrite_documents([bad], LOCK)


def test_containerd_hosts_and_crio_conf():
    files = containerd_hosts(LOCK, "/etc/containerd/certs.d/site-ca.crt")
    hub = files["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert '[host."https://reg.site:5000/v2/mirror/docker.io"]' in hub
    assert 'server = "https://reg.site:5000/v2/mirror/docker.io"' in hub, "no fallback to the public upstream"
    assert 'ca = "/etc/containerd/certs.d/site-ca.crt"' in hub
    assert "override_path = true" in hub
    assert "/etc/containerd/certs.d/quay.io/hosts.toml" in files
    flat = {"images": [dict(LOCK["images"][0], destination="reg.site:5000/library/busybox:1.36")]}
    plain = containerd_hosts(flat, "/ca.crt")["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert '[host."https://reg.site:5000"]' in plain and "override_path = false" in plain
    conf = crio_registries_conf(LOCK)
    assert 'prefix = "quay.io"\nlocation = "reg.site:5000/mirror/quay.io"' in conf


def test_pull_secret_and_attachment():
    secret = pull_secret("internal-pull", "renku", "reg.site:5000", "puller", "s3cret")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["reg.site:5000"]["auth"] == base64.b64encode(b"puller:s3cret").decode()
    docs = [
        {"kind": "ServiceAccount", "metadata": {"name": "sa"}},
        {"kind": "Deployment", "spec": {"template": {"spec": {"containers": []}}}},
        {"kind": "ConfigMap", "data": {}},
    ]
    once = attach_pull_secret(docs, "internal-pull")
    twice = attach_pull_secret(once, "internal-pull")
    assert twice == once
    assert once[0]["imagePullSecrets"] == [{"name": "internal-pull"}]
    assert once[1]["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "internal-pull"}]
    assert "imagePullSecrets" not in once[2]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1.2.3", ("1.2.3", "1.2.3")),
        ("0.30.2", ("0.30.2", "0.30.2")),
        ("1.0.0+g1a2b", ("1.0.0+g1a2b", "1.0.0_g1a2b")),
        ("V2.0.0-rc.1", ("2.0.0-rc.1", "2.0.0-rc.1")),
    ],
)
def test_oci_version(version, expected):
    assert oci_version(version) == expected


@pytest.mark.parametrize("version", ["1.2", "latest", "v1.2.3.4", ""])
def test_oci_version_rejects_non_semver(version):
    with pytest.raises(ChartMirrorError, match="not semantic"):
        oci_version(version)


def test_values_overlay_handles_renku_name_tag_maps():
    values = {"notebooks": {"gitRpcServer": {"image": {"name": "busybox", "tag": "1.36"}}}}
    overlay, used = values_overlay(values, LOCK)
    image = overlay["notebooks"]["gitRpcServer"]["image"]
    assert image["name"] == "reg.site:5000/mirror/docker.io/library/busybox"
    assert image["digest"] == D1
    assert used == ["docker.io/library/busybox:1.36"]


def test_rewrite_accepts_the_internal_names_an_overlay_gave_and_pins_them():
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ui"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "reg.site:5000/mirror/docker.io/library/busybox:1.36"}]}
            }
        },
    }
    (out,) = rewrite_documents([doc], LOCK)
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == BUSYBOX


def test_rewrite_pins_image_names_in_secret_and_configmap_values():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "renku-notebooks"},
        "stringData": {
            "NB_SESSIONS__GIT_RPC_SERVER__IMAGE": "busybox:1.36",
            "NB_SESSIONS__OIDC__CLIENT_ID": "renku",
            "NB_SESSIONS__GIT_CLONE__SENTRY__DSN": None,
        },
        "data": {"IMAGE": base64.b64encode(b"quay.io/oauth2-proxy/oauth2-proxy:v7.6.0").decode(), "BIN": "////"},
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": " busybox:1.36\n"}}
    out_secret, out_config = rewrite_documents([secret, config], LOCK)
    assert out_secret["stringData"]["NB_SESSIONS__GIT_RPC_SERVER__IMAGE"] == BUSYBOX
    assert out_secret["stringData"]["NB_SESSIONS__OIDC__CLIENT_ID"] == "renku"
    assert out_secret["stringData"]["NB_SESSIONS__GIT_CLONE__SENTRY__DSN"] is None
    assert base64.b64decode(out_secret["data"]["IMAGE"]).decode() == OAUTH
    assert out_secret["data"]["BIN"] == "////"
    assert out_config["data"]["image"] == BUSYBOX
    assert secret["stringData"]["NB_SESSIONS__GIT_RPC_SERVER__IMAGE"] == "busybox:1.36"  # input untouched


def test_rewrite_error_names_the_image_and_its_workloads():
    doc = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "setup", "namespace": "renku"},
        "spec": {"template": {"spec": {"containers": [{"name": "init", "image": "renku/init-db:2.19.3"}]}}},
    }
    with pytest.raises(LockError, match=r"renku/init-db:2.19.3 \(used by Job/renku/setup container init\)"):
        rewrite_documents([doc], LOCK)
