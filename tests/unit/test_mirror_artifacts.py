"""Artifacts that travel with an image: which tags each mode takes, lock records, the fallback index merge."""

from __future__ import annotations

import json

import pytest

from ansible_collections.airgap.renku.plugins.module_utils.mirror.artifacts import (
    Artifact,
    fallback_tag,
    is_signature_type,
    lock_records,
    merge_fallback_index,
    tag_artifacts,
    taken,
    wanted_referrer,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import ImagePlan, locate
from ansible_collections.airgap.renku.plugins.module_utils.mirror.receipt import Receipt
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import (
    ImageMirrorSettings,
    MirrorParamError,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import OCI_INDEX, OCI_MANIFEST
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import parse_image
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Manifest, sha256_digest

DIGEST = "sha256:" + "d" * 64
STEM = "sha256-" + "d" * 64
OTHER = "sha256-" + "e" * 64
TAGS = ["1.0", STEM, STEM + ".sig", STEM + ".att", STEM + ".sbom", OTHER + ".sig", STEM + ".sig.bak"]


def test_fallback_tag_is_the_digest_with_a_dash():
    assert fallback_tag(DIGEST) == STEM


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", [("signature", STEM + ".sig"), ("attestation", STEM + ".att"), ("sbom", STEM + ".sbom")]),
        ("signatures", [("signature", STEM + ".sig")]),
        ("none", []),
    ],
)
def test_each_mode_takes_its_tags_of_this_digest_only(mode, expected):
    assert tag_artifacts(TAGS, DIGEST, mode) == expected


def test_tags_that_are_not_there_are_not_taken():
    assert tag_artifacts(["1.0", STEM + ".att"], DIGEST, "all") == [("attestation", STEM + ".att")]
    assert tag_artifacts(["1.0", STEM + ".att"], DIGEST, "signatures") == []


@pytest.mark.parametrize(
    ("artifact_type", "signature"),
    [
        ("application/vnd.dev.cosign.artifact.sig.v1+json", True),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", True),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2", True),
        ("application/vnd.cncf.notary.signature", True),
        ("application/spdx+json", False),
        ("", False),
    ],
)
def test_signature_referrers_are_known_by_artifact_type(artifact_type, signature):
    assert is_signature_type(artifact_type) is signature
    desc = {"digest": DIGEST, "artifactType": artifact_type}
    assert wanted_referrer(desc, "signatures") is signature
    assert wanted_referrer(desc, "all") is True
    assert wanted_referrer(desc, "none") is False


def test_lock_records_name_kind_tag_or_artifact_type_and_digest_in_a_stable_order():
    arts = [
        Artifact("referrer", "sha256:" + "2" * 64, OCI_MANIFEST, artifact_type="application/spdx+json"),
        Artifact("sbom", "sha256:" + "3" * 64, OCI_MANIFEST, tag=STEM + ".sbom"),
        Artifact("signature", "sha256:" + "1" * 64, OCI_MANIFEST, tag=STEM + ".sig"),
    ]
    records = lock_records(arts)
    assert [r["kind"] for r in records] == ["signature", "sbom", "referrer"]
    assert records[0] == {
        "kind": "signature",
        "tag": STEM + ".sig",
        "digest": "sha256:" + "1" * 64,
        "media_type": OCI_MANIFEST,
    }
    assert records[2] == {
        "kind": "referrer",
        "artifact_type": "application/spdx+json",
        "digest": "sha256:" + "2" * 64,
        "media_type": OCI_MANIFEST,
    }
    assert lock_records(list(reversed(arts))) == records
    assert [Artifact.from_record(r).record() for r in records] == records


def _plan() -> ImagePlan:
    settings = ImageMirrorSettings.from_params({"mode": "direct", "destination": "reg.site:5000", "prefix": "m"}).engine
    plan = locate(parse_image("docker.io/library/alpine:3.20"), settings)
    plan.digest = DIGEST
    return plan


def test_the_lock_entry_lists_artifacts_only_when_there_are_some():
    plan = _plan()
    assert "artifacts" not in plan.lock_entry()
    plan.artifacts = [Artifact("signature", "sha256:" + "1" * 64, OCI_MANIFEST, tag=STEM + ".sig")]
    assert plan.lock_entry()["artifacts"] == [
        {"kind": "signature", "tag": STEM + ".sig", "digest": "sha256:" + "1" * 64, "media_type": OCI_MANIFEST}
    ]


def _referrer(artifact_type: str) -> Artifact:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + "4" * 64, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 10},
            "annotations": {"a": "b"},
        }
    ).encode()
    manifest = Manifest(body, OCI_MANIFEST, sha256_digest(body))
    return Artifact("referrer", manifest.digest, OCI_MANIFEST, artifact_type=artifact_type, manifest=manifest)


def test_a_referrer_descriptor_carries_its_artifact_type_size_and_annotations():
    art = _referrer("application/spdx+json")
    assert art.descriptor() == {
        "mediaType": OCI_MANIFEST,
        "digest": art.digest,
        "size": len(art.manifest.body),
        "artifactType": "application/spdx+json",
        "annotations": {"a": "b"},
    }


def test_the_fallback_index_is_made_then_extended_and_never_loses_an_entry():
    sbom, bundle = _referrer("application/spdx+json"), _referrer("application/vnd.dev.sigstore.bundle.v0.3+json")
    first = merge_fallback_index(None, [sbom.descriptor()])
    assert first is not None and first.media_type == OCI_INDEX and first.digest == sha256_digest(first.body)
    assert [d["digest"] for d in first.json()["manifests"]] == [sbom.digest]
    assert merge_fallback_index(first, [sbom.descriptor()]) is None  # nothing new: nothing to push
    second = merge_fallback_index(first, [bundle.descriptor(), sbom.descriptor()])
    assert second is not None
    assert [d["digest"] for d in second.json()["manifests"]] == [sbom.digest, bundle.digest]


def test_an_existing_index_written_by_another_tool_keeps_its_entries_and_fields():
    foreign = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": "sha256:" + "9" * 64, "x": 1}]}
    body = json.dumps(foreign).encode()
    merged = merge_fallback_index(Manifest(body, OCI_INDEX, sha256_digest(body)), [_referrer("t").descriptor()])
    assert merged is not None
    assert merged.json()["manifests"][0] == {"digest": "sha256:" + "9" * 64, "x": 1}
    assert len(merged.json()["manifests"]) == 2


def test_the_artifacts_mode_is_part_of_the_receipt():
    pairs = [("reg/m/a:1", DIGEST)]
    assert Receipt("r", pairs, [], "all").tag == Receipt("r", pairs, []).tag  # the default
    assert len({Receipt("r", pairs, [], mode).tag for mode in ("all", "signatures", "none")}) == 3
    assert json.loads(Receipt("r", pairs, []).config)["artifacts"] == "all"


@pytest.mark.parametrize(
    ("mode", "kept"),
    [("all", ["signature", "sbom", "referrer", "referrer"]), ("signatures", ["signature", "referrer"]), ("none", [])],
)
def test_known_artifacts_are_taken_per_mode(mode, kept):
    known = [
        Artifact("signature", DIGEST, tag=STEM + ".sig"),
        Artifact("sbom", DIGEST, tag=STEM + ".sbom"),
        Artifact("referrer", DIGEST, artifact_type="application/spdx+json"),
        Artifact("referrer", DIGEST, artifact_type="application/vnd.dev.sigstore.bundle.v0.3+json"),
    ]
    taken_kinds = [a for a in known if taken(a, mode)]
    assert [a.kind for a in taken_kinds] == kept
    if mode == "signatures":
        assert taken_kinds[1].artifact_type.startswith("application/vnd.dev.sigstore.bundle")


@pytest.mark.parametrize("mode", ["all", "signatures", "none"])
def test_the_settings_carry_the_mode(mode):
    params = {"mode": "direct", "destination": "reg.site:5000", "artifacts": mode}
    assert ImageMirrorSettings.from_params(params).engine.artifacts == mode


def test_the_default_is_all_and_a_bad_value_names_the_field_and_the_choices():
    assert ImageMirrorSettings.from_params({"mode": "direct", "destination": "r:1"}).engine.artifacts == "all"
    with pytest.raises(MirrorParamError, match=r"artifacts='sigs' must be one of all, signatures, none"):
        ImageMirrorSettings.from_params({"mode": "direct", "destination": "r:1", "artifacts": "sigs"})
