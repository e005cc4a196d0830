# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror receipts: a record, kept in the destination registry, that a set of images was verified there.

After a run in which every image of the set was verified at the destination (copied and read back,
or found under its tag with the pinned digest), the engine pushes a small OCI artifact to
`<prefix>/airgap-renku-mirror-receipts:set-<key>`. Its config blob lists every destination
reference and digest of the set, its artifacts' too; `<key>` is the sha256 of that list (and of the
platform filter and the artifacts mode), so the tag names exactly one set and the artifact's digest is
known in advance.

A rerun whose lock file pins every requested image, with the same destinations and platforms,
asks the destination for that one tag instead of one request per image: when the receipt is there
with the expected digest, the set is present as it was verified. Changes made to the destination
behind the mirror's back (a repository deleted by hand) are not seen by that check; `verify: tags`
asks for every tag, `verify: full` also for every blob. The receipt's config also keeps, in the
registry itself, the destination and digest of every image of the set.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import OCI_MANIFEST
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    Manifest,
    Registry,
    sha256_digest,
)

RECEIPT_REPOSITORY = "airgap-renku-mirror-receipts"
RECEIPT_CONFIG_TYPE = "application/vnd.airgap.renku.mirror-receipt.v1+json"


def receipt_repository(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{RECEIPT_REPOSITORY}" if prefix else RECEIPT_REPOSITORY


def receipt_config(entries: List[Tuple[str, str]], platforms: List[str], artifacts: str = "all") -> bytes:
    """Canonical bytes of a set: sorted (destination, digest) pairs (images and their artifacts), the
    platform filter and the artifacts mode (a set mirrored without artifacts, or before they travelled, is
    not taken for one mirrored with them)."""
    body: Dict[str, Any] = {
        "kind": "MirrorReceipt",
        "platforms": sorted(platforms),
        "images": [{"destination": dest, "digest": digest} for dest, digest in sorted(set(entries))],
    }
    body["artifacts"] = artifacts
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def receipt_manifest(config: bytes) -> Manifest:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": RECEIPT_CONFIG_TYPE,
            "config": {"mediaType": RECEIPT_CONFIG_TYPE, "digest": sha256_digest(config), "size": len(config)},
            "layers": [],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return Manifest(body, OCI_MANIFEST, sha256_digest(body))


def receipt_tag(config: bytes) -> str:
    return "set-" + hashlib.sha256(config).hexdigest()


class Receipt:
    """The receipt of one image set at one destination repository."""

    def __init__(
        self, repository: str, entries: List[Tuple[str, str]], platforms: List[str], artifacts: str = "all"
    ) -> None:
        self.repository = repository
        self.config = receipt_config(entries, platforms, artifacts)
        self.manifest = receipt_manifest(self.config)
        self.tag = receipt_tag(self.config)

    def present(self, dest: Registry) -> bool:
        """One request: does the tag carry exactly this receipt?"""
        return dest.manifest_digest(self.repository, self.tag) == self.manifest.digest

    def write(self, dest: Registry) -> None:
        digest = sha256_digest(self.config)
        upload = dest.mount_blob(self.repository, digest, self.repository)
        if upload is not None:
            dest.upload_blob(self.repository, digest, self.config, upload)
        dest.put_manifest(self.repository, self.tag, self.manifest)
