"""The platform stage's checks of the mirror lock: a missing or outdated hand-off names the stage to run first."""

from __future__ import annotations

from ansible_collections.airgap.renku.plugins.module_utils.mirror.lock import (
    LOCK_API_VERSION,
    LOCK_KIND,
    chart_digest_problem,
    chart_problems,
    lock_problems,
    locked_chart,
)

PATH = "/srv/airgap/mirror/mirror-lock.yaml"
CHART = "oci://registry.site:5000/charts/renku"
ENTRY = {
    "name": "renku",
    "version": "v2.19.3",
    "oci_version": "2.19.3",
    "oci_tag": "2.19.3",
    "destination": CHART,
    "digest": "sha256:" + "a" * 64,
}
LOCK = {
    "apiVersion": LOCK_API_VERSION,
    "kind": LOCK_KIND,
    "images": [{"source": "docker.io/library/alpine:3.20", "destination": "r/a:3.20", "digest": "sha256:" + "b" * 64}],
    "charts": [ENTRY],
}


def test_a_usable_lock_has_no_problems():
    assert lock_problems(LOCK, PATH, exists=True) == []


def test_missing_lock_says_to_run_the_mirror_stage():
    (problem,) = lock_problems({}, PATH, exists=False)
    assert PATH in problem and "does not exist" in problem and "playbooks/mirror.yml" in problem


def test_a_file_that_is_not_a_lock_is_named():
    (problem,) = lock_problems({"apiVersion": "v1", "kind": "ConfigMap"}, PATH, exists=True)
    assert "v1/ConfigMap" in problem and "playbooks/mirror.yml" in problem


def test_a_lock_without_images_is_not_usable():
    (problem,) = lock_problems({**LOCK, "images": []}, PATH, exists=True)
    assert "lists no images" in problem and "playbooks/mirror.yml" in problem


def test_the_chart_is_found_by_published_or_oci_version():
    assert locked_chart(LOCK, CHART, "v2.19.3") == ENTRY
    assert locked_chart(LOCK, CHART + "/", "2.19.3") == ENTRY
    assert chart_problems(LOCK, PATH, CHART, "2.19.3") == []


def test_a_lock_for_another_version_is_outdated():
    (problem,) = chart_problems(LOCK, PATH, CHART, "2.20.0")
    assert "at v2.19.3, not at 2.20.0" in problem and "playbooks/mirror.yml" in problem


def test_a_chart_the_lock_never_saw_is_named():
    (problem,) = chart_problems(LOCK, PATH, "oci://registry.site:5000/charts/other", "1.0.0")
    assert "does not list the chart oci://registry.site:5000/charts/other" in problem
    assert chart_problems({**LOCK, "charts": None}, PATH, CHART, "2.19.3")


def test_a_chart_pushed_again_after_the_lock_is_stale():
    assert chart_digest_problem(ENTRY, PATH, ENTRY["digest"]) is None
    newer = chart_digest_problem(ENTRY, PATH, "sha256:" + "c" * 64)
    assert newer and "pushed again after the lock was written" in newer and "playbooks/mirror.yml" in newer
    gone = chart_digest_problem(ENTRY, PATH, None)
    assert gone and "missing from the internal registry" in gone and f"{CHART}:2.19.3" in gone
