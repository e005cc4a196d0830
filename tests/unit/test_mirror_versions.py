"""Chart version ranges as Helm writes them, resolved to the newest version a source offers."""

from __future__ import annotations

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.versions import (
    VersionRangeError,
    is_range,
    resolve_range,
)

COMMON = ["2.16.1", "2.27.0", "2.31.10", "1.17.1", "3.0.0-rc.1", "2.31.11-beta.1", "latest"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.x.x", "2.31.10"),
        ("2.x", "2.31.10"),
        ("2", "2.31.10"),
        ("2.27.x", "2.27.0"),
        ("~2.16.0", "2.16.1"),
        ("^2.16.0", "2.31.10"),
        (">=2.0.0 <2.30.0", "2.27.0"),
        (">=2.0.0, <2.30.0", "2.27.0"),
        ("1.x || 2.16.x", "2.16.1"),
        ("*", "2.31.10"),
        (">2.27", "2.31.10"),
        ("<=2.27", "2.27.0"),
        ("!=2.31.10, 2.x", "2.27.0"),
        (">=3.0.0-rc.0", "3.0.0-rc.1"),
        ("4.x.x", None),
    ],
)
def test_ranges_resolve_to_the_newest_match(text, expected):
    assert resolve_range(text, COMMON) == expected


def test_caret_on_zero_versions_and_v_prefixed_tags():
    offered = ["v0.2.3", "v0.2.9", "v0.3.0", "0.0.3", "0.0.4"]
    assert resolve_range("^0.2.3", offered) == "v0.2.9"
    assert resolve_range("^0.0.3", offered) == "0.0.3"


def test_exact_versions_are_not_ranges():
    assert not is_range("2.31.10") and not is_range("v1.2.3") and not is_range("1.0.0+build.7")
    assert is_range("2.x.x") and is_range("^1.2.3") and is_range("2")


@pytest.mark.parametrize("text", ["1.2 - 1.4", "banana", ">= ", "1.2.3 || "])
def test_unreadable_ranges_are_named(text):
    with pytest.raises(VersionRangeError):
        resolve_range(text, COMMON)


def _classic(versions: list[str]) -> dict:
    return {"https://charts.example/sdsc": {"entries": {"csi-rclone": [{"version": v} for v in versions]}}}


def test_a_range_is_locked_and_drift_reported_until_asked():
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import resolve_chart_ranges

    chart = {"chart": "csi-rclone", "repo": "https://charts.example/sdsc", "version": "0.x"}
    (first,), drift = resolve_chart_ranges((chart,), None, {}, False, _classic(["0.3.5", "0.6.0"]))
    assert (first["version"], first["version_range"], drift) == ("0.6.0", "0.x", [])
    lock = {
        "charts": [{"source": "https://charts.example/sdsc/csi-rclone", "version_range": "0.x", "version": "0.6.0"}]
    }
    newer = _classic(["0.3.5", "0.6.0", "0.7.1", "1.0.0"])
    (kept,), drift = resolve_chart_ranges((chart,), None, lock, False, newer)
    assert kept["version"] == "0.6.0"
    assert drift == [{"name": "csi-rclone", "source": "https://charts.example/sdsc/csi-rclone", "version_range": "0.x",
                      "locked": "0.6.0", "latest": "0.7.1", "updated": False}]  # fmt: skip
    (moved,), drift = resolve_chart_ranges((chart,), None, lock, True, newer)
    assert moved["version"] == "0.7.1" and drift[0]["updated"] is True
    exact = dict(chart, version="0.3.5")
    assert resolve_chart_ranges((exact,), None, lock, False, newer) == ([exact], [])
