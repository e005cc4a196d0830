"""Random fields of a chart, found by rendering twice, keep the values the running release has."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.platform.generated import (
    generated_fields,
    name_pattern,
    stabilise,
)


def job(name: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "renku/init-db:2.19.3"}]}}},
    }


def deployment(reloader: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "renku-ui", "namespace": "renku"},
        "spec": {"template": {"metadata": {"annotations": {"reloader": reloader}}, "spec": {"containers": []}}},
    }


STATIC = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same"}, "data": {"a": "b"}}


@pytest.mark.parametrize(
    ("first", "second", "pattern"),
    [
        (
            "renku-init-postgres-renku-rev1-ydtme",
            "renku-init-postgres-renku-rev1-irh0z",
            "renku-init-postgres-renku-rev1-*",
        ),
        ("renku-init-rev1-abcde", "renku-init-rev1-abxyz", "renku-init-rev1-*"),  # random parts sharing a prefix
        ("x-abc-setup", "x-qrs-setup", "x-*-setup"),
    ],
)
def test_name_pattern_cuts_at_separators(first, second, pattern):
    assert name_pattern(first, second) == pattern


def test_two_renders_tell_the_random_fields():
    first = [STATIC, job("renku-init-db-rev1-aaaaa"), deployment("x1")]
    second = [STATIC, job("renku-init-db-rev1-bbbbb"), deployment("x2")]
    fields = generated_fields(first, second)
    assert fields == [
        {
            "kind": "Job",
            "namespace": "",
            "name": "renku-init-db-rev1-aaaaa",
            "paths": [],
            "name_pattern": "renku-init-db-rev1-*",
        },
        {
            "kind": "Deployment",
            "namespace": "renku",
            "name": "renku-ui",
            "paths": [["spec", "template", "metadata", "annotations", "reloader"]],
        },
    ]
    with pytest.raises(ValueError, match="differ in length"):
        generated_fields(first, second[:2])


def test_stabilise_reuses_recorded_names_and_live_values():
    first = [STATIC, job("renku-init-db-rev1-aaaaa"), deployment("x1")]
    fields = generated_fields(first, [STATIC, job("renku-init-db-rev1-bbbbb"), deployment("x2")])
    live = {"renku-ui": deployment("live")}
    names = {"Job/renku/renku-init-db-rev1-*": "renku-init-db-rev1-zzzzz"}
    original = copy.deepcopy(first)
    out, recorded = stabilise(first, fields, names, "renku", lambda d: live.get(d["metadata"]["name"]))
    assert out[0] is first[0]
    assert out[1]["metadata"]["name"] == "renku-init-db-rev1-zzzzz"
    assert out[2]["spec"]["template"]["metadata"]["annotations"]["reloader"] == "live"
    assert recorded == names
    assert first == original  # inputs are not modified


def test_first_install_keeps_what_was_rendered():
    first = [job("renku-init-db-rev1-aaaaa"), deployment("x1")]
    fields = generated_fields(first, [job("renku-init-db-rev1-bbbbb"), deployment("x2")])
    out, recorded = stabilise(first, fields, {}, "renku", lambda d: None)
    assert out == first
    assert recorded == {"Job/renku/renku-init-db-rev1-*": "renku-init-db-rev1-aaaaa"}
