"""Which charts keep their digests: the rebuild rule, OCI sources, and the chart layer of a Helm manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import (
    chart_layer_digest,
    file_sha256,
    known_package_digest,
    oci_source,
    repackage_reason,
    source_tag,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import (
    HELM_CHART_CONFIG,
    HELM_CHART_CONTENT,
    OCI_MANIFEST,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Manifest, sha256_digest

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "charts"


@pytest.mark.parametrize(
    ("version", "rebuilt"),
    [("0.30.2", False), ("1.0.0+build.7", False), ("2.0.0-rc.1", False), ("v1.2.3", True), ("V0.1.0", True)],
)
def test_only_a_version_that_must_change_is_rebuilt(version, rebuilt):
    reason = repackage_reason({"chart": "x", "version": version})
    assert (reason is not None) is rebuilt
    if rebuilt:
        assert version in reason and "leading v" in reason


def test_oci_source_and_its_tag():
    chart = {"chart": "oci://registry.example:5000/bitnamicharts/common/", "version": "1.0.0+g1"}
    assert oci_source(chart) == ("registry.example:5000", "bitnamicharts/common")
    assert source_tag(chart) == "1.0.0_g1"
    assert oci_source({"chart": "renku", "repo": "https://charts.example", "version": "2.19.3"}) is None
    assert oci_source({"chart": "/srv/charts/renku-2.19.3.tgz", "version": "2.19.3"}) is None


def test_chart_layer_is_found_by_media_type():
    layer = "sha256:" + "a" * 64
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": HELM_CHART_CONFIG, "digest": "sha256:" + "b" * 64, "size": 10},
            "layers": [{"mediaType": HELM_CHART_CONTENT, "digest": layer, "size": 20}],
        }
    ).encode()
    assert chart_layer_digest(Manifest(body, OCI_MANIFEST, sha256_digest(body))) == layer
    assert chart_layer_digest(None) is None


def test_a_package_file_is_known_by_its_sha256():
    package = REFERENCE / "csi-rclone-0.6.0.tgz"
    expected = "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest()
    assert file_sha256(str(package)) == expected
    assert known_package_digest({"chart": str(package), "version": "0.6.0"}, None, {}) == expected


def test_a_classic_repository_digest_comes_from_its_index():
    digest = "c" * 64
    indexes = {"https://charts.example/sdsc": {"entries": {"csi-rclone": [{"version": "0.6.0", "digest": digest}]}}}
    chart = {"chart": "csi-rclone", "repo": "https://charts.example/sdsc/", "version": "0.6.0"}
    assert known_package_digest(chart, None, indexes) == f"sha256:{digest}"
    assert known_package_digest(dict(chart, version="0.5.0"), None, indexes) is None
