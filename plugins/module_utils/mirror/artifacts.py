# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signatures, attestations, SBOMs and referrers that travel with an image.

Two ways a registry keeps them, both looked up for the digest an image's tag points at (the index of a
multi-platform image: what `cosign sign` signs):

- cosign's tag scheme: `sha256-<hex>.sig`, `.att` and `.sbom` tags in the image's repository. The
  repository's tags are listed once per run (one request for every image of the repository).
- OCI 1.1 referrers: manifests whose `subject` is the image, listed by `GET /v2/<repo>/referrers/<digest>`,
  or, where a registry does not serve that API (distribution 2.8 and 3.x), by the index under the
  referrers fallback tag `sha256-<hex>`. A registry that answered 404 once is not asked again in the run.

At the destination, tag-scheme artifacts get the same tags and referrers are pushed by digest; where the
destination lists no referrers itself, the engine writes (or extends) the fallback tag index, as oras and
regctl do. Modes: V(all) takes every one of them, V(signatures) only `.sig` tags and referrers whose
artifactType is a signature, V(none) nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import OCI_EMPTY, OCI_INDEX
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    Manifest,
    Registry,
    RegistryError,
    manifest_blobs,
    sha256_digest,
)

ARTIFACT_MODES = ("all", "signatures", "none")
# cosign tag suffix -> kind recorded in the lock file
TAG_KINDS: Tuple[Tuple[str, str], ...] = ((".sig", "signature"), (".att", "attestation"), (".sbom", "sbom"))
# artifactTypes of referrers that are signatures (cosign, sigstore bundles of every version, Notary v2)
SIGNATURE_TYPES = ("application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.cncf.notary.signature")
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"


def fallback_tag(digest: str) -> str:
    """The referrers fallback tag of `digest` (`sha256-<hex>`), also the stem of cosign's tags."""
    algorithm, _sep, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"


def tag_artifacts(tags: Iterable[str], digest: str, mode: str) -> List[Tuple[str, str]]:
    """(kind, tag) of the cosign tags of `digest` among `tags` that `mode` takes."""
    if mode == "none":
        return []
    present, stem = set(tags), fallback_tag(digest)
    kinds = TAG_KINDS if mode == "all" else TAG_KINDS[:1]
    return [(kind, stem + suffix) for suffix, kind in kinds if stem + suffix in present]


def is_signature_type(artifact_type: str) -> bool:
    return artifact_type in SIGNATURE_TYPES or artifact_type.startswith(SIGSTORE_BUNDLE_PREFIX)


def wanted_referrer(descriptor: Dict[str, Any], mode: str) -> bool:
    if mode == "all":
        return True
    return mode == "signatures" and is_signature_type(str(descriptor.get("artifactType") or ""))


def taken(artifact: Artifact, mode: str) -> bool:
    """Whether `mode` takes an artifact already known (from a lock file or a bundle)."""
    if mode == "signatures":
        return artifact.kind == "signature" or (
            artifact.kind == "referrer" and is_signature_type(artifact.artifact_type)
        )
    return mode == "all"


@dataclass
class Artifact:
    """One artifact of an image: a cosign tag (`tag`) or a referrer (`artifact_type`)."""

    kind: str  # signature | attestation | sbom | referrer
    digest: str
    media_type: str = ""
    tag: str = ""
    artifact_type: str = ""
    manifest: Optional[Manifest] = None  # fetched when it is to be copied or exported
    children: List[Manifest] = field(default_factory=list)  # an artifact that is an index
    present: bool = False

    @property
    def reference(self) -> str:
        """Where it lives at the destination: its tag, or its digest (referrers)."""
        return self.tag or self.digest

    def record(self) -> Dict[str, Any]:
        """Its lock file entry."""
        entry: Dict[str, Any] = {"kind": self.kind}
        if self.tag:
            entry["tag"] = self.tag
        if self.artifact_type:
            entry["artifact_type"] = self.artifact_type
        entry.update(digest=self.digest, media_type=self.media_type)
        return entry

    @classmethod
    def from_record(cls, record: Dict[str, Any]) -> Artifact:
        return cls(
            kind=str(record["kind"]),
            digest=str(record["digest"]),
            media_type=str(record.get("media_type") or ""),
            tag=str(record.get("tag") or ""),
            artifact_type=str(record.get("artifact_type") or ""),
        )

    def manifests(self) -> List[Manifest]:
        """Children first, then the artifact's own manifest (the order they are pushed in)."""
        return [*self.children, *([self.manifest] if self.manifest is not None else [])]

    def blobs(self) -> List[Dict[str, Any]]:
        return [desc for manifest in self.manifests() for desc in manifest_blobs(manifest.json())]

    def descriptor(self) -> Dict[str, Any]:
        """Its entry in a referrers index (artifactType and annotations from the manifest)."""
        if self.manifest is None:
            raise RegistryError(f"referrer {self.digest}: manifest not fetched")
        data = self.manifest.json()
        desc: Dict[str, Any] = {
            "mediaType": self.manifest.media_type,
            "digest": self.digest,
            "size": len(self.manifest.body),
        }
        artifact_type = data.get("artifactType") or (data.get("config") or {}).get("mediaType")
        if artifact_type:
            desc["artifactType"] = artifact_type
        if data.get("annotations"):
            desc["annotations"] = data["annotations"]
        return desc


def sort_artifacts(artifacts: List[Artifact]) -> List[Artifact]:
    order = {kind: i for i, (_suffix, kind) in enumerate(TAG_KINDS)}
    return sorted(artifacts, key=lambda a: (order.get(a.kind, len(order)), a.tag, a.artifact_type, a.digest))


def lock_records(artifacts: List[Artifact]) -> List[Dict[str, Any]]:
    return [a.record() for a in sort_artifacts(artifacts)]


def merge_fallback_index(existing: Optional[Manifest], descriptors: List[Dict[str, Any]]) -> Optional[Manifest]:
    """The fallback tag index with `descriptors` added to what `existing` lists; None when nothing is new."""
    data: Dict[str, Any] = existing.json() if existing is not None else {}
    if not isinstance(data.get("manifests"), list):
        data = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    listed = {d.get("digest") for d in data["manifests"]}
    new = [d for d in descriptors if d["digest"] not in listed]
    if not new:
        return None
    data["manifests"] = [*data["manifests"], *new]
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return Manifest(body, OCI_INDEX, sha256_digest(body))


# --------------------------------------------------------------------------------------------------
# talking to registries


class TagLister:
    """Each repository's tags, listed once per run however many images of it are mirrored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: Dict[Tuple[str, str], Set[str]] = {}
        self._pending: Dict[Tuple[str, str], threading.Event] = {}

    def tags(self, registry: Registry, repo: str) -> Set[str]:
        key = (registry.host, repo)
        while True:
            with self._lock:
                if key in self._tags:
                    return self._tags[key]
                waiting = self._pending.get(key)
                if waiting is None:
                    self._pending[key] = threading.Event()
                    break
            waiting.wait()
        try:
            found = set(registry.list_tags(repo))
            with self._lock:
                self._tags[key] = found
            return found
        finally:
            with self._lock:
                self._pending.pop(key).set()


def _fetch(registry: Registry, repo: str, reference: str) -> Manifest:
    manifest = registry.get_manifest(repo, reference)
    if manifest is None:
        raise RegistryError(f"{registry.host}/{repo}: artifact {reference} listed but not found")
    return manifest


def fetch_manifests(artifact: Artifact, registry: Registry, repo: str) -> None:
    """The artifact's manifest (and its children when it is an index), from `registry`."""
    if artifact.manifest is None:
        artifact.manifest = _fetch(registry, repo, artifact.digest)
        artifact.media_type = artifact.manifest.media_type
    if artifact.manifest.is_index and not artifact.children:
        artifact.children = [_fetch(registry, repo, d["digest"]) for d in artifact.manifest.json().get("manifests", [])]


def referrer_descriptors(
    registry: Registry, repo: str, digest: str, tags: Optional[Set[str]] = None
) -> List[Dict[str, Any]]:
    """Descriptors of the referrers of `digest`: the API's answer, else the fallback tag's index. `tags`, when
    the repository's tags are known, saves asking for a fallback tag that is not there."""
    listed = registry.referrers(repo, digest)
    if listed is not None:
        return listed
    if tags is not None and fallback_tag(digest) not in tags:
        return []
    index = registry.get_manifest(repo, fallback_tag(digest))
    return list(index.json().get("manifests") or []) if index is not None and index.is_index else []


def discover(src: Registry, repo: str, digest: str, tags: Set[str], mode: str) -> List[Artifact]:
    """The artifacts of the image `repo@digest` at the source that `mode` takes (tag-scheme ones with
    their manifests; referrers as descriptors)."""
    if mode == "none":
        return []
    found: List[Artifact] = []
    for kind, tag in tag_artifacts(tags, digest, mode):
        manifest = src.get_manifest(repo, tag)
        if manifest is not None:
            found.append(Artifact(kind, manifest.digest, manifest.media_type, tag=tag, manifest=manifest))
    seen = {a.digest for a in found}
    for desc in referrer_descriptors(src, repo, digest, tags):
        if not desc.get("digest") or desc["digest"] in seen:
            continue
        seen.add(desc["digest"])
        art = Artifact("referrer", desc["digest"], str(desc.get("mediaType") or ""))
        art.artifact_type = str(desc.get("artifactType") or "")
        if art.artifact_type in ("", OCI_EMPTY):  # a listing that gives the config's type: ask the manifest
            fetch_manifests(art, src, repo)
            data = art.manifest.json() if art.manifest is not None else {}
            art.artifact_type = str(data.get("artifactType") or (data.get("config") or {}).get("mediaType") or "")
        if wanted_referrer({"artifactType": art.artifact_type}, mode):
            found.append(art)
    return sort_artifacts(found)


def listed_referrers(dest: Registry, repo: str, digest: str) -> Set[str]:
    """Digests the destination lists as referrers of `digest` (its API, else its fallback tag index)."""
    return {d.get("digest") for d in referrer_descriptors(dest, repo, digest) if d.get("digest")}


def mark_present(artifacts: List[Artifact], dest: Registry, repo: str, digest: str) -> None:
    """Set `present` on each artifact the destination has under its tag or digest (referrers: and lists)."""
    referrers = [a for a in artifacts if not a.tag]
    listed = listed_referrers(dest, repo, digest) if referrers else set()
    for art in artifacts:
        art.present = dest.manifest_digest(repo, art.reference) == art.digest and (
            bool(art.tag) or art.digest in listed
        )


def push(
    artifacts: List[Artifact], dest: Registry, repo: str, digest: str, ensure_blob: Callable[[Dict[str, Any]], None]
) -> int:
    """Push the artifacts not present (manifests fetched already): blobs, children, then the manifest under
    its tag or digest; then list new referrers in the fallback tag where the destination has no API.
    Returns how many were pushed."""
    pushed: List[Artifact] = []
    for art in artifacts:
        if art.present:
            continue
        if art.manifest is None:
            raise RegistryError(f"artifact {art.digest}: manifest not fetched")
        for desc in art.blobs():
            ensure_blob(desc)
        for child in art.children:
            dest.put_manifest(repo, child.digest, child)
        dest.put_manifest(repo, art.reference, art.manifest)
        pushed.append(art)
    referrers = [a for a in pushed if not a.tag]
    if referrers and dest.referrers(repo, digest) is None:
        merged = merge_fallback_index(
            dest.get_manifest(repo, fallback_tag(digest)), [a.descriptor() for a in referrers]
        )
        if merged is not None:
            dest.put_manifest(repo, fallback_tag(digest), merged)
    return len(pushed)


def verify(artifacts: List[Artifact], dest: Registry, repo: str, digest: str, where: str) -> List[str]:
    """Problems found reading the artifacts back at the destination: each under its tag or digest with the
    same digest, each referrer listed for the image."""
    problems = []
    referrers = [a for a in artifacts if not a.tag]
    listed = listed_referrers(dest, repo, digest) if referrers else set()
    for art in artifacts:
        found = dest.manifest_digest(repo, art.reference)
        if found != art.digest:
            problems.append(f"{where}: {art.kind} {art.reference}: digest {found}, expected {art.digest}")
        elif not art.tag and art.digest not in listed:
            problems.append(f"{where}: referrer {art.digest} is not listed for {digest}")
    return problems
