"""Signatures, attestations, SBOMs and referrers travel with their images (image_mirror `artifacts`), on the lab.

The lab's upstream registry (distribution 2.8, no referrers API) holds, from lab/seed.py: cosign tag-scheme
`.sig`/`.att`/`.sbom` manifests for renku-data-service and spicedb, signed with the lab's ECDSA key, and OCI 1.1
referrers (an SPDX SBOM, a sigstore bundle) for renku-ui and spicedb, listed in the referrers fallback tag. The
internal registry (distribution v3) is the destination; every test writes under its own prefix.
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.airgap.renku.plugins.module_utils.mirror.artifacts import fallback_tag
from ansible_collections.airgap.renku.plugins.module_utils.mirror.bundle import (
    export_bundle,
    import_bundle,
    verify_bundle,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import Endpoint, MirrorSettings, mirror_images
from ansible_collections.airgap.renku.plugins.module_utils.mirror.run import run
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import ImageMirrorSettings
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
import seed  # noqa: E402

SIGNED = "docker.io/renku/renku-data-service:0.80.1"
REFERRED = "docker.io/renku/renku-ui:4.27.2"
BOTH = "docker.io/authzed/spicedb:v1.30.0"  # an index; signed and referred to
PLAIN = "docker.io/authzed/spicedb:v1.30.0-debug"  # same repository, nothing attached
IMAGES = [SIGNED, REFERRED, BOTH, PLAIN]
# what each image carries at the source: kinds in lock order
CARRIED = {
    SIGNED: ["signature", "attestation", "sbom"],
    REFERRED: ["referrer", "referrer"],
    BOTH: ["signature", "attestation", "sbom", "referrer", "referrer"],
    PLAIN: [],
}
SIGNATURE_REFERRER = seed.SIGSTORE_BUNDLE


def _settings(lab_env: dict, prefix: str, **extra) -> MirrorSettings:
    return MirrorSettings(
        destination=Endpoint(
            lab_env["REGISTRY_INTERNAL"],
            lab_env["LAB_CA"],
            lab_env["REGISTRY_INTERNAL_USER"],
            lab_env["REGISTRY_INTERNAL_PASSWORD"],
        ),
        prefix=prefix,
        source_rewrites={"docker.io": f"{lab_env['REGISTRY_UPSTREAM']}/docker.io"},
        ca_file=lab_env["LAB_CA"],
        **extra,
    )


def _prefix(name: str) -> str:
    return f"itest-artifacts-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def upstream(lab_env):
    reg = Registry(lab_env["REGISTRY_UPSTREAM"], lab_env["LAB_CA"])
    yield reg
    reg.close()


@pytest.fixture
def internal(lab_env):
    reg = Registry(
        lab_env["REGISTRY_INTERNAL"],
        lab_env["LAB_CA"],
        lab_env["REGISTRY_INTERNAL_USER"],
        lab_env["REGISTRY_INTERNAL_PASSWORD"],
    )
    yield reg
    reg.close()


def _source_repo(ref: str) -> str:
    return "docker.io/" + ref.removeprefix("docker.io/").rpartition(":")[0]


def _dest_repo(prefix: str, ref: str) -> str:
    return f"{prefix}/{ref.rpartition(':')[0]}"


def _source_artifacts(upstream: Registry, ref: str) -> dict[str, str]:
    """reference (tag or digest) -> digest of every artifact of `ref` at the source, read independently."""
    repo = _source_repo(ref)
    digest = upstream.manifest_digest(repo, ref.rpartition(":")[2])
    found = {}
    for suffix in (".sig", ".att", ".sbom"):
        tagged = upstream.manifest_digest(repo, fallback_tag(digest) + suffix)
        if tagged:
            found[fallback_tag(digest) + suffix] = tagged
    index = upstream.get_manifest(repo, fallback_tag(digest))
    for desc in index.json()["manifests"] if index else []:
        found[desc["digest"]] = desc["digest"]
    return found


def _entries(lock: dict) -> dict[str, dict]:
    return {e["source"]: e for e in lock["images"]}


def _assert_at_destination(internal: Registry, upstream: Registry, prefix: str, refs: list[str]) -> None:
    """Every artifact of each image is at the destination under the same tag or digest, and each referrer is
    listed for the image there (the internal registry has no referrers API: in its fallback tag index)."""
    for ref in refs:
        repo = _dest_repo(prefix, ref)
        digest = internal.manifest_digest(repo, ref.rpartition(":")[2])
        for reference, expected in _source_artifacts(upstream, ref).items():
            assert internal.manifest_digest(repo, reference) == expected, f"{ref}: {reference}"
        referrers = [r for r in _source_artifacts(upstream, ref) if r.startswith("sha256:")]
        if referrers:
            assert internal.referrers(repo, digest) is None  # distribution v3 serves no referrers API
            index = internal.get_manifest(repo, fallback_tag(digest))
            assert index is not None and index.is_index
            assert {d["digest"] for d in index.json()["manifests"]} == set(referrers)


def _verify_cosign_signature(reg: Registry, repo: str, image_digest: str, public_key_pem: bytes) -> None:
    """What a verifier does with a cosign tag-scheme signature, here at the destination: the payload names the
    image's digest and the annotation is an ECDSA signature over the payload by the lab's key."""
    manifest = reg.get_manifest(repo, fallback_tag(image_digest) + ".sig")
    assert manifest is not None
    layer = manifest.json()["layers"][0]
    assert layer["mediaType"] == seed.COSIGN_SIMPLESIGNING
    resp = reg.open_blob(repo, layer["digest"])
    payload = resp.content
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == image_digest
    key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(layer["annotations"][seed.COSIGN_SIGNATURE])
    key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        key.verify(signature, payload + b" ", ec.ECDSA(hashes.SHA256()))


def test_direct_copies_every_artifact_with_its_digest_records_it_and_reruns_change_nothing(
    lab_env, upstream, internal, monkeypatch
):
    prefix = _prefix("direct")
    conf = _settings(lab_env, prefix)
    listed: list[str] = []
    real_list_tags = Registry.list_tags

    def counting_list_tags(self, repo):
        listed.append(f"{self.host}/{repo}")
        return real_list_tags(self, repo)

    monkeypatch.setattr(Registry, "list_tags", counting_list_tags)

    # check mode plans the artifacts and pushes nothing
    planned = mirror_images(IMAGES, conf, check_mode=True)
    assert planned.errors == []
    assert {str(p.source): len(p.artifacts_missing) for p in planned.plans} == {r: len(k) for r, k in CARRIED.items()}
    assert internal.list_tags(_dest_repo(prefix, BOTH)) == []

    listed.clear()
    first = mirror_images(IMAGES, conf)
    assert first.errors == []
    assert first.stats.artifacts_copied == sum(len(k) for k in CARRIED.values()) == 10
    # the source's tags are listed once per repository (spicedb's two tags share one listing)
    assert sorted(listed) == sorted({f"{lab_env['REGISTRY_UPSTREAM']}/{_source_repo(r)}" for r in IMAGES})
    _assert_at_destination(internal, upstream, prefix, IMAGES)

    lock = first.lock()
    for ref, kinds in CARRIED.items():
        records = _entries(lock)[ref].get("artifacts", [])
        assert [r["kind"] for r in records] == kinds
        expected = _source_artifacts(upstream, ref)
        assert {r.get("tag") or r["digest"]: r["digest"] for r in records} == expected
    both = {r.get("artifact_type") for r in _entries(lock)[BOTH]["artifacts"]}
    assert {seed.SPDX_JSON, seed.SIGSTORE_BUNDLE} <= both

    public = (Path(lab_env["LAB_STATE"]) / seed.SIGNING_PUBLIC_KEY).read_bytes()
    for ref in (SIGNED, BOTH):
        repo = _dest_repo(prefix, ref)
        _verify_cosign_signature(internal, repo, internal.manifest_digest(repo, ref.rpartition(":")[2]), public)

    # reruns: by the receipt (one request), and asking every tag and artifact; nothing copied either way
    trusted = mirror_images(IMAGES, conf, previous_lock=lock)
    assert trusted.stats.receipt == "trusted" and trusted.stats.artifacts_copied == 0
    assert trusted.lock() == lock
    tags = mirror_images(IMAGES, conf, previous_lock=lock, verify="tags")
    assert tags.errors == [] and tags.stats.images_copied == 0 and tags.stats.artifacts_copied == 0
    assert tags.stats.artifacts_present == 10 and tags.stats.receipt == "present"
    assert tags.lock() == lock
    full = mirror_images(IMAGES, conf, verify="full")
    assert full.errors == [] and full.stats.artifacts_copied == 0 and full.lock() == lock


def test_a_referrer_missing_from_the_destination_index_is_listed_again(lab_env, upstream, internal):
    prefix = _prefix("relist")
    conf = _settings(lab_env, prefix)
    assert mirror_images([REFERRED], conf).errors == []
    repo = _dest_repo(prefix, REFERRED)
    digest = internal.manifest_digest(repo, REFERRED.rpartition(":")[2])
    index = internal.get_manifest(repo, fallback_tag(digest))
    data = index.json()
    dropped = data["manifests"].pop()
    from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Manifest, sha256_digest

    body = json.dumps(data).encode()
    internal.put_manifest(repo, fallback_tag(digest), Manifest(body, index.media_type, sha256_digest(body)))

    again = mirror_images([REFERRED], conf, verify="tags")
    assert again.errors == [] and again.stats.artifacts_copied == 1
    relisted = internal.get_manifest(repo, fallback_tag(digest)).json()["manifests"]
    assert dropped["digest"] in {d["digest"] for d in relisted}
    _assert_at_destination(internal, upstream, prefix, [REFERRED])


@pytest.mark.parametrize("mode", ["signatures", "none"])
def test_signatures_copies_only_signatures_and_none_nothing(lab_env, upstream, internal, mode):
    prefix = _prefix(mode)
    result = mirror_images(IMAGES, _settings(lab_env, prefix, artifacts=mode))
    assert result.errors == []
    entries = _entries(result.lock())
    for ref in IMAGES:
        repo = _dest_repo(prefix, ref)
        digest = upstream.manifest_digest(_source_repo(ref), ref.rpartition(":")[2])
        tags = set(internal.list_tags(repo))
        records = entries[ref].get("artifacts", [])
        stem = fallback_tag(digest)
        own = {t for t in tags if t.startswith(stem)}  # spicedb's two tags share a repository
        if mode == "none":
            assert records == [] and own == set()
            continue
        sig = {stem + ".sig"} if CARRIED[ref][:1] == ["signature"] else set()
        assert own == sig | ({stem} if ref in (REFERRED, BOTH) else set())
        expected = (["signature"] if sig else []) + (["referrer"] if ref in (REFERRED, BOTH) else [])
        assert [r["kind"] for r in records] == expected
        for record in records:
            if record["kind"] == "referrer":
                assert record["artifact_type"] == SIGNATURE_REFERRER
    assert result.stats.artifacts_copied == (0 if mode == "none" else 4)


def test_export_and_import_carry_the_artifacts(lab_env, upstream, internal, tmp_path):
    export_conf = _settings(lab_env, "")
    export_conf = MirrorSettings(
        destination=Endpoint(""),
        prefix="",
        source_rewrites=export_conf.source_rewrites,
        ca_file=lab_env["LAB_CA"],
    )
    directory, archive = tmp_path / "bundle", tmp_path / "bundle.tar"
    exported = export_bundle(IMAGES, export_conf, str(directory), str(archive))
    assert exported.errors == [] and exported.stats.artifacts_copied == 10
    assert verify_bundle(str(archive)) == []
    lock = yaml.safe_load((directory / "mirror-lock.yaml").read_text())
    for ref, kinds in CARRIED.items():
        records = _entries(lock)[ref].get("artifacts", [])
        assert [r["kind"] for r in records] == kinds
        for record in records:  # the manifests are in the bundle, under their digests
            assert (directory / "blobs" / "sha256" / record["digest"].removeprefix("sha256:")).is_file()

    prefix = _prefix("import")
    conf = _settings(lab_env, prefix)
    imported = import_bundle(str(archive), conf, verify="full")
    assert imported.errors == [] and imported.stats.artifacts_copied == 10
    assert imported.stats.receipt == "written"
    _assert_at_destination(internal, upstream, prefix, IMAGES)
    public = (Path(lab_env["LAB_STATE"]) / seed.SIGNING_PUBLIC_KEY).read_bytes()
    repo = _dest_repo(prefix, BOTH)
    _verify_cosign_signature(internal, repo, internal.manifest_digest(repo, "v1.30.0"), public)
    assert {e["source"]: e.get("artifacts") for e in imported.lock()["images"]} == {
        e["source"]: e.get("artifacts") for e in lock["images"]
    }

    again = import_bundle(str(archive), conf)
    assert again.stats.receipt == "trusted" and again.stats.artifacts_copied == 0
    tags = import_bundle(str(archive), conf, verify="tags")
    assert tags.errors == [] and tags.stats.artifacts_copied == 0 and tags.stats.artifacts_present == 10

    # an import that takes only signatures into another prefix
    only = _prefix("import-sig")
    sigs = import_bundle(str(directory), _settings(lab_env, only, artifacts="signatures"))
    assert sigs.errors == [] and sigs.stats.artifacts_copied == 4
    stem = fallback_tag(internal.manifest_digest(_dest_repo(prefix, SIGNED), "0.80.1"))
    assert internal.manifest_digest(_dest_repo(only, SIGNED), stem + ".sig") is not None
    assert internal.manifest_digest(_dest_repo(only, SIGNED), stem + ".att") is None


def test_module_run_writes_the_lock_once_and_a_rerun_reports_no_change(lab_env, upstream, internal, tmp_path):
    prefix = _prefix("module")
    params = {
        "mode": "direct",
        "images": [SIGNED, REFERRED],
        "source_rewrites": {"docker.io": f"{lab_env['REGISTRY_UPSTREAM']}/docker.io"},
        "destination": lab_env["REGISTRY_INTERNAL"],
        "destination_username": lab_env["REGISTRY_INTERNAL_USER"],
        "destination_password": lab_env["REGISTRY_INTERNAL_PASSWORD"],
        "prefix": prefix,
        "ca_file": lab_env["LAB_CA"],
        "lock_file": str(tmp_path / "mirror-lock.yaml"),
        "artifacts": "all",
        "parallel": 4,
    }
    settings = ImageMirrorSettings.from_params(params)
    check = run(settings, check_mode=True)
    assert check["changed"] is True and not (tmp_path / "mirror-lock.yaml").exists()
    rows = {r["source"]: r for r in check["images"]}
    assert [a["action"] for a in rows[SIGNED]["artifacts"]] == ["copy"] * 3
    first = run(settings, check_mode=False)
    assert first["changed"] is True and first["errors"] == []
    written = yaml.safe_load((tmp_path / "mirror-lock.yaml").read_text())
    assert len(_entries(written)[SIGNED]["artifacts"]) == 3 and len(_entries(written)[REFERRED]["artifacts"]) == 2
    for verify in ("receipt", "tags"):
        again = run(ImageMirrorSettings.from_params({**params, "verify": verify}), check_mode=False)
        assert again["changed"] is False, verify
        assert again["stats"]["artifacts_copied"] == 0
    check_again = run(settings, check_mode=True)
    assert check_again["changed"] is False
    # asking for signatures only after all: the lock records fewer artifacts, nothing is copied
    fewer = run(ImageMirrorSettings.from_params({**params, "artifacts": "signatures"}), check_mode=False)
    assert fewer["stats"]["artifacts_copied"] == 0 and fewer["errors"] == []
    assert [a["kind"] for a in _entries(fewer["lock"])[SIGNED]["artifacts"]] == ["signature"]
    _assert_at_destination(internal, upstream, prefix, [SIGNED, REFERRED])


REFERRERS_PORT = 5111


@pytest.fixture
def referrers_registry(tmp_path):
    """A registry of our own that serves the referrers API (lab/referrers-registry), TLS and the internal account."""
    import labcore

    daemon = labcore.referrers_registry_daemon(
        labcore.LabCA(labcore.PKI), f"mirror-referrers-{uuid.uuid4().hex[:6]}", REFERRERS_PORT, tmp_path / "blobs"
    )
    daemon.start()
    try:
        labcore.wait_healthy([daemon], timeout=30)
        yield f"127.0.0.1:{REFERRERS_PORT}"
    finally:
        daemon.stop()


def test_registries_with_the_referrers_api_list_referrers_there_and_answer_discovery(
    lab_env, upstream, internal, referrers_registry
):
    host = referrers_registry
    account = (lab_env["REGISTRY_INTERNAL_USER"], lab_env["REGISTRY_INTERNAL_PASSWORD"])
    conf = _settings(lab_env, "site")
    conf = MirrorSettings(**{**conf.__dict__, "destination": Endpoint(host, lab_env["LAB_CA"], *account)})
    first = mirror_images(IMAGES, conf)
    assert first.errors == [] and first.stats.artifacts_copied == 10
    dest = Registry(host, lab_env["LAB_CA"], *account)
    try:
        for ref in (REFERRED, BOTH):
            repo = _dest_repo("site", ref)
            digest = dest.manifest_digest(repo, ref.rpartition(":")[2])
            expected = {r for r in _source_artifacts(upstream, ref) if r.startswith("sha256:")}
            assert {d["digest"] for d in dest.referrers(repo, digest) or []} == expected
            assert dest.manifest_digest(repo, fallback_tag(digest)) is None  # the API lists them: no fallback tag
        assert mirror_images(IMAGES, conf, verify="tags").stats.artifacts_copied == 0
    finally:
        dest.close()

    # the same registry as a source: referrers found through its API (it has no fallback tag), signature
    # referrers told apart by their manifests' artifactType
    for mode, copied in (("all", 10), ("signatures", 4)):
        prefix = _prefix(f"api-source-{mode}")
        from_api = MirrorSettings(
            **{
                **_settings(lab_env, prefix, artifacts=mode).__dict__,
                "source_rewrites": {"docker.io": f"{host}/site/docker.io"},
                "credentials": {host: Endpoint(host, lab_env["LAB_CA"], *account)},
            }
        )
        result = mirror_images(IMAGES, from_api)
        assert result.errors == [] and result.stats.artifacts_copied == copied, mode
        carried = _entries(first.lock())[BOTH]["artifacts"]
        signatures = [r for r in carried if r["kind"] == "signature" or r.get("artifact_type") == SIGNATURE_REFERRER]
        assert _entries(result.lock())[BOTH]["artifacts"] == (carried if mode == "all" else signatures)
        if mode == "all":
            _assert_at_destination(internal, upstream, prefix, IMAGES)
