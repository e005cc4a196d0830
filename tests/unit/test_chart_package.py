"""Reading real chart packages offline: vendored versions, conditions and every subchart's defaults."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.common.charts import (
    ChartError,
    chart_summary,
    condition_enabled,
    merge_values,
    read_chart,
)

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "charts"
RENKU = REFERENCE / "renku-2.19.3.tgz"


@pytest.fixture(scope="module")
def renku() -> dict:
    return chart_summary(read_chart(str(RENKU)), {"global": {"renku": {"domain": "renku.site.example"}}})


def test_the_real_renku_package_vendors_what_its_readme_says(renku):
    assert (renku["name"], renku["version"], renku["api_version"]) == ("renku", "2.19.3", "v1")
    assert renku["versions"] == {
        "postgresql": "14.2.4",
        "keycloakx": "7.1.4",
        "redis": "20.3.0",
        "amalthea-sessions": "0.30.2",
        "dlf-chart": "0.3.9-renku-2",
        "csi-rclone": "0.6.0",
        "solr": "8.9.2",
        "common": "2.31.10",  # declared as 2.x.x: the vendored version is what counts
    }


def test_conditions_are_evaluated_against_the_values(renku):
    enabled = {d["name"]: d["enabled"] for d in renku["dependencies"]}
    assert enabled["csi-rclone"] is False and enabled["dlf-chart"] is False
    assert enabled["postgresql"] is True and enabled["amalthea-sessions"] is True
    (amalthea,) = [d for d in renku["dependencies"] if d["name"] == "amalthea-sessions"]
    (nested,) = amalthea["dependencies"]
    assert (nested["name"], nested["alias"], nested["version"], nested["enabled"]) == (
        "csi-rclone",
        "csiRclone",
        "0.3.5",
        False,
    )


def test_subchart_defaults_are_nested_and_parent_values_win(renku):
    values = renku["values"]
    # keycloakx's own default image (renku's values.yaml does not name it)
    assert values["keycloakx"]["image"]["repository"] == "quay.io/keycloak/keycloak"
    # renku's values override the bitnami defaults of its postgresql subchart
    assert values["postgresql"]["image"]["registry"] == "harbor.renkulab.io"
    assert "tag" in values["amalthea-sessions"]["controllerManager"]["manager"]["image"]
    assert values["amalthea-sessions"]["global"]["renku"]["domain"] == "renku.site.example"  # globals flow down
    assert values["global"]["renku"]["domain"] == "renku.site.example"


def test_an_unpacked_chart_directory_reads_the_same(tmp_path, renku):
    with tarfile.open(RENKU) as archive:
        archive.extractall(tmp_path, filter="data")
    from_dir = chart_summary(
        read_chart(str(tmp_path / "renku")), {"global": {"renku": {"domain": "renku.site.example"}}}
    )
    assert from_dir["versions"] == renku["versions"]
    assert from_dir["values"] == renku["values"]


def test_not_a_chart_is_named(tmp_path):
    with pytest.raises(ChartError, match="no such chart"):
        read_chart(str(tmp_path / "missing.tgz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChartError, match=r"Chart\.yaml with name and version is missing"):
        read_chart(str(tmp_path / "empty"))
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ChartError, match="not a chart package"):
        read_chart(str(bad))


def test_merge_and_condition_rules():
    assert merge_values({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}, "d": None}) == {"a": {"b": 1, "c": [2]}, "d": None}
    assert condition_enabled("x.enabled,y.enabled", {"y": {"enabled": False}}) is False
    assert condition_enabled("x.enabled", {"x": {"enabled": "yes"}}) is True  # not a bool: enabled
    assert condition_enabled("", {}) is True
