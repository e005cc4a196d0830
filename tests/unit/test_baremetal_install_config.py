"""install-config.yaml for a mirrored site: contents from the inventory and the lock, and the refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from certificates import make_cert

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import install_config as ic
from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventories/example/group_vars/all/baremetal.yml").read_text())
REGISTRY = {"host": "registry.ocp.example.org:5000", "username": "ocp", "password": "s3cret-pull"}
LOCK = {
    "apiVersion": "airgap.renku/v1",
    "kind": "MirrorLock",
    "images": [
        {
            "source": "quay.io/openshift-release-dev/ocp-release:4.18.1-x86_64",
            "destination": "registry.ocp.example.org:5000/quay.io/openshift-release-dev/ocp-release:4.18.1-x86_64",
            "digest": "sha256:" + "a" * 64,
        },
        {
            "source": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "b" * 64,
            "destination": "registry.ocp.example.org:5000/quay.io/openshift-release-dev/ocp-v4.0-art-dev",
            "digest": "sha256:" + "b" * 64,
        },
    ],
}


def site() -> dict:
    return bm.build_site(EXAMPLE["baremetal_hosts"], EXAMPLE["baremetal_networks"], EXAMPLE["baremetal_cluster"])


def ca_pem() -> str:
    return make_cert("site CA")[0]


def test_contents_come_from_the_inventory_and_the_lock():
    document = ic.install_config(site(), {"ssh_key": "ssh-ed25519 AAAA test"}, LOCK, ca_pem(), REGISTRY)
    assert document["metadata"] == {"name": "ocp"} and document["baseDomain"] == "example.org"
    assert document["controlPlane"]["replicas"] == 3
    assert document["compute"][0]["replicas"] == 8  # 3 infra + 5 compute
    assert document["platform"] == {"none": {}}
    assert document["networking"]["machineNetwork"] == [{"cidr": "172.16.10.0/24"}]
    auth = json.loads(document["pullSecret"])["auths"]["registry.ocp.example.org:5000"]["auth"]
    assert base64.b64decode(auth).decode() == "ocp:s3cret-pull"
    assert document["additionalTrustBundle"].startswith("-----BEGIN CERTIFICATE-----")
    assert document["imageDigestSources"] == [
        {
            "source": "quay.io/openshift-release-dev/ocp-release",
            "mirrors": ["registry.ocp.example.org:5000/quay.io/openshift-release-dev/ocp-release"],
        },
        {
            "source": "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
            "mirrors": ["registry.ocp.example.org:5000/quay.io/openshift-release-dev/ocp-v4.0-art-dev"],
        },
    ]


def test_every_problem_is_named_before_anything_is_written():
    settings = {
        "cluster_networks": [{"cidr": "172.16.0.0/14", "host_prefix": 12}],
        "service_networks": ["172.30.0.0/16"],
        "control_plane_replicas": 5,
    }
    with pytest.raises(bm.InventoryError) as err:
        ic.install_config(site(), settings, {"images": []}, "not a pem", {"host": "r"})
    problems = err.value.problems
    assert problems[0].startswith("install_config cluster_networks[0].host_prefix: 12 must lie between")
    assert (
        "install_config networks: cluster_networks[0] 172.16.0.0/14 overlaps machine network 172.16.10.0/24; "
        "give each network its own range"
    ) in problems
    assert "install_config control_plane_replicas: 5 does not match the inventory's 3 master hosts" in " ".join(
        problems
    )
    assert any(p.startswith("install_config ca: not PEM certificates") for p in problems)
    assert any(p.startswith("install_config registry: give host, username and password") for p in problems)
    assert problems[-1].startswith("install_config lock: the mirror lock has no images; run the mirror stage first")


def test_a_leaf_certificate_is_not_a_trust_anchor():
    leaf = make_cert("registry.ocp.example.org", ca=False, key_cert_sign=False)[0]
    with pytest.raises(bm.InventoryError) as err:
        ic.install_config(site(), {}, LOCK, leaf, REGISTRY)
    assert err.value.problems[0].endswith("is not a CA certificate")
