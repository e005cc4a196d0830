"""Receipts: the tag names exactly one set, and the artifact is known before it is fetched."""

from __future__ import annotations

import json

from ansible_collections.airgap.renku.plugins.module_utils.mirror.receipt import (
    RECEIPT_CONFIG_TYPE,
    Receipt,
    receipt_repository,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import sha256_digest

A = ("reg.site:5000/mirror/docker.io/library/alpine:3.20", "sha256:" + "a" * 64)
B = ("reg.site:5000/mirror/docker.io/library/busybox:1.36", "sha256:" + "b" * 64)


def test_order_and_duplicates_do_not_change_the_receipt():
    first = Receipt("mirror/airgap-renku-mirror-receipts", [A, B], [])
    second = Receipt("mirror/airgap-renku-mirror-receipts", [B, A, A], [])
    assert first.tag == second.tag and first.manifest.digest == second.manifest.digest
    assert first.tag.startswith("set-") and len(first.tag) == 68


def test_a_changed_digest_destination_or_platform_filter_is_another_set():
    base = Receipt("r", [A, B], []).tag
    assert Receipt("r", [A, (B[0], "sha256:" + "c" * 64)], []).tag != base
    assert Receipt("r", [A, (B[0].replace("mirror/", "site/"), B[1])], []).tag != base
    assert Receipt("r", [A, B], ["linux/amd64"]).tag != base
    assert Receipt("r", [A], []).tag != base


def test_manifest_is_an_oci_artifact_whose_config_is_the_set():
    receipt = Receipt("r", [A, B], ["linux/arm64", "linux/amd64"])
    manifest = receipt.manifest.json()
    assert manifest["config"] == {
        "mediaType": RECEIPT_CONFIG_TYPE,
        "digest": sha256_digest(receipt.config),
        "size": len(receipt.config),
    }
    assert manifest["layers"] == [] and receipt.manifest.digest == sha256_digest(receipt.manifest.body)
    config = json.loads(receipt.config)
    assert config["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [(i["destination"], i["digest"]) for i in config["images"]] == [A, B]


def test_repository_sits_under_the_prefix():
    assert receipt_repository("mirror/") == "mirror/airgap-renku-mirror-receipts"
    assert receipt_repository("") == "airgap-renku-mirror-receipts"
