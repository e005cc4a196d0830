#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_mirror
short_description: Discover, plan, copy and verify container images for an offline site
version_added: "0.1.0"
description:
  - Finds every image that charts (rendered with C(helm template), one render per values set, the
    union kept) or manifest files will pull, in every pod spec place (containers, init and ephemeral
    containers, all workload kinds, Helm hooks, CRD pod spec paths), in CRD image fields you name,
    in env values and args that look like image references (kept only when the source registry
    confirms them), plus an explicit list.
  - Normalises references (V(nginx) becomes V(docker.io/library/nginx:latest), with a warning for the
    implicit tag) and maps each to the internal registry under O(prefix).
  - Copies whole indexes (all platforms or O(platforms)), keeping digests; pushes blobs, then child
    manifests by digest, then the tag, so an interrupted run never leaves a tag on a partial image; a
    rerun skips what is there; every copied manifest is verified at the destination.
  - Or exports to a portable bundle (OCI layout, blobs stored once, SHA256SUMS, lock file) and imports
    it on the other side.
  - Carries the image's signatures, attestations, SBOMs and OCI 1.1 referrers with it (see O(artifacts)), under
    the same digests, and verifies them at the destination.
  - Writes a lock file (source, destination, digest per platform, artifacts) that later stages use.
  - After a run in which every image was verified at the destination, pushes a small receipt artifact
    (C(<prefix>/airgap-renku-mirror-receipts:set-<sha256 of the set>)) there; a rerun that the lock file
    pins completely then costs one request instead of one per image (see O(verify)).
  - TLS is always verified, against O(ca_file).
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.registry_destination
  - airgap.renku.ca_file
  - airgap.renku.requirements.pyyaml
  - airgap.renku.requirements.helm
attributes:
  check_mode:
    support: full
    description: Plans only (discovery, digests, what is present, bytes to copy); copies and writes nothing.
  diff_mode:
    support: full
    description: Shows the lock file before and after.
options:
  mode:
    description:
      - V(direct) copies registry to registry; V(export) writes a bundle; V(import) pushes a bundle to
        O(destination); V(verify_bundle) checks a bundle against its checksums.
      - V(direct) and V(import) need O(destination).
    type: str
    choices: [direct, export, import, verify_bundle]
    default: direct
  images:
    description: Extra image references to mirror, besides those discovered.
    type: list
    elements: str
    default: []
  charts:
    description: Charts to render for discovery.
    type: list
    elements: dict
    default: []
    suboptions:
      chart:
        description: Chart reference, V(oci://host/path/name) or a name in O(charts[].repo).
        type: str
        required: true
      repo:
        description: Classic chart repository URL.
        type: str
      version:
        description: Chart version.
        type: str
      release:
        description: Release name used for rendering.
        type: str
        default: mirror
      values_sets:
        description: Sets of values files; the chart is rendered once per set.
        type: list
        elements: list
        default: []
      values:
        description: Inline values; the chart is rendered once per item.
        type: list
        elements: dict
        default: []
      username:
        description: Chart repository user.
        type: str
      password:
        description: Chart repository password or token.
        type: str
  manifest_files:
    description: Files of Kubernetes YAML documents to scan.
    type: list
    elements: path
    default: []
  pod_spec_paths:
    description: Pod specs of custom resources, as V(Kind:path.to.podspec).
    type: list
    elements: str
    default: []
  image_fields:
    description:
      - Image fields of custom resources, as V(Kind:path.to.field); V(*) matches every list item or map value.
    type: list
    elements: str
    default: []
  confirm_candidates:
    description:
      - Ask the source registry whether references found in env values and args exist before
        mirroring them. When false they are mirrored unconfirmed.
    type: bool
    default: true
  source_rewrites:
    description:
      - Where to pull each original registry from, V(docker.io) to V(upstream.example:5000/docker.io).
    type: dict
    default: {}
  source_credentials:
    description: Credentials and CA per source registry host (after rewriting).
    type: list
    elements: dict
    default: []
    suboptions:
      registry:
        description: Registry host[:port].
        type: str
        required: true
      username:
        description: User name.
        type: str
      password:
        description: Password or token.
        type: str
      ca_file:
        description: CA bundle for this registry; O(ca_file) otherwise.
        type: path
  # destination, destination_username, destination_password: doc fragment registry_destination
  prefix:
    default: mirror
  keep_registry_host:
    description:
      - Keep the original registry host as the first path component at the destination
        (V(mirror/docker.io/library/alpine)), so repositories of different registries never collide.
    type: bool
    default: true
  platforms:
    description: Platforms to keep from indexes (V(linux/amd64)); all when empty.
    type: list
    elements: str
    default: []
  artifacts:
    description:
      - What travels with each image, looked up for the digest its tag points at (the index of a multi-platform
        image, what C(cosign sign) signs), in V(direct), V(export) and V(import) modes.
      - V(all) copies cosign's tag-scheme artifacts (C(sha256-<hex>.sig), C(.att), C(.sbom) tags) and every OCI 1.1
        referrer (what the source's referrers API lists, or its referrers fallback tag C(sha256-<hex>) holding an
        index).
      - V(signatures) copies only the C(.sig) tags and referrers whose artifactType is a signature (cosign,
        sigstore bundles, Notary).
      - V(none) copies nothing besides the image.
      - Tags keep their names at the destination; referrers are pushed by digest, and where the destination has no
        referrers API they are listed in its fallback tag index. Each one is read back (same digest, referrers
        listed for the image) and recorded in the lock file under the image's C(artifacts).
      - The source's tag list is read once per repository; a registry without the referrers API is asked once.
      - The receipt (see O(verify)) covers the artifacts and this option.
      - An image narrowed to O(platforms) has another digest than the one signed and carries no artifacts.
    type: str
    choices: [all, signatures, none]
    default: all
  parallel:
    description: Concurrent transfers.
    type: int
    default: 8
  helm:
    description: Helm binary used to render charts.
    type: path
    default: helm
  lock_file:
    description:
      - Lock file to write, and to read on the next run. A tag the lock file records stays pinned to its
        recorded digest (the source is not asked again, and a missing image is copied by that digest) unless
        O(refresh) is set. A rerun costs one request (the receipt, see O(verify)) or one per image.
    type: path
  refresh:
    description: Ask the source registries again for tags the lock file already pins, and follow tags that moved.
    type: bool
    default: false
  bundle:
    description:
      - Bundle directory (export) or directory or V(.tar) archive (import, verify_bundle).
      - V(export) first compares the bytes the plan writes (blobs the directory lacks, and the archive) with the
        free space of each target directory's file system, and fails naming the directory and both numbers,
        before anything is written; check mode makes the same comparison.
    type: path
  bundle_archive:
    description:
      - With V(export), also pack the bundle directory into this uncompressed tar file.
      - With V(import), unpack this archive into the O(bundle) directory first (files already there with
        their size are kept), after the same free space check, then import from the directory; check mode
        checks the space and plans from the archive.
    type: path
  verify:
    description:
      - How a rerun makes sure what the lock file pins is at the destination. Copied images are always
        read back (tag and every manifest digest).
      - V(receipt) asks for the receipt of the whole set (one request) and trusts it when present with the
        expected digest; it does not notice images deleted from the destination by hand since it was written.
        Without a matching receipt this is V(tags).
      - V(tags) asks for every tag (one request per image) and copies what is missing or moved.
      - V(full) is V(tags) plus every child manifest and blob of every image.
      - In V(import) mode the set is the bundle's images, pinned by its lock file, so the receipt works there
        too. V(export) and check mode write no receipt.
    type: str
    choices: [receipt, tags, full]
    default: receipt
  progress_file:
    description: Append progress lines to this file while running (follow it with C(tail -f)).
    type: path
  progress_interval:
    description:
      - Seconds between live progress lines in the C(ansible-playbook) output (images done of total, bytes,
        rate, ETA, and a line per image finished since the last one), with every password masked.
      - Shown when the task runs on the controller (connection C(local), no C(become)), where the action
        plugin runs the copy itself; elsewhere the module runs as usual and only O(progress_file) shows progress.
    type: float
    default: 5.0
  output_dir:
    description:
      - Write what later stages use under this directory, from the lock of this run (not in V(export) mode).
      - C(values/<chart>.yaml), a values overlay per chart of O(charts) (from C(helm show values)) pinning every
        image value to the destination by digest.
      - C(runtime/etc/containerd/certs.d/<registry>/hosts.toml) per source registry and
        C(runtime/etc/containers/registries.conf.d/50-airgap-mirror.conf), with the CA at O(node_ca_path) and
        C(runtime/etc/containers/certs.d/<destination>/ca.crt) (copy the C(runtime/) tree onto the nodes).
    type: path
  node_ca_path:
    description: Path of the site CA on the nodes, written into C(hosts.toml).
    type: str
    default: /etc/containerd/certs.d/site-ca.crt
notes:
  - C(helm) is needed only when O(charts) is used.
  - The copy engine is the collection's own registry client (streaming, cross-repository mounts, one
    connection pool for all images); see the role README for the measured comparison with skopeo.
seealso:
  - module: airgap.renku.chart_mirror
  - module: airgap.renku.git_mirror
"""

EXAMPLES = r"""
- name: Mirror the images of a chart and two extra images into the internal registry
  airgap.renku.image_mirror:
    charts:
      - chart: oci://registry.connected.example/charts/renku
        version: 2.19.3
        values_sets:
          - [/srv/site/renku-values.yaml]
    images:
      - quay.io/oauth2-proxy/oauth2-proxy:v7.6.0
    image_fields:
      - "AmaltheaSession:spec.session.image"
    source_rewrites:
      docker.io: registry.connected.example/docker.io
    destination: registry.site.example:5000
    destination_username: mirror
    destination_password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt
    lock_file: /srv/site/mirror-lock.yaml

- name: Mirror an image with its cosign signatures only (no attestations, SBOMs or other referrers)
  airgap.renku.image_mirror:
    images: [ghcr.io/example/app:1.2.3]
    artifacts: signatures
    destination: registry.site.example:5000
    destination_username: mirror
    destination_password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt
    lock_file: /srv/site/mirror-lock.yaml

- name: Connected side - export a bundle
  airgap.renku.image_mirror:
    mode: export
    images: [docker.io/library/alpine:3.20]
    bundle: /srv/carry/bundle
    bundle_archive: /srv/carry/bundle.tar
    ca_file: /etc/pki/site-ca.crt

- name: Offline side - unpack the archive (after a free space check) and import it
  airgap.renku.image_mirror:
    mode: import
    bundle: /srv/site/bundle
    bundle_archive: /media/usb/bundle.tar
    destination: registry.site.example:5000
    destination_username: mirror
    destination_password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt
    lock_file: /srv/site/mirror-lock.yaml

- name: Offline side - import straight from the archive (nothing unpacked)
  airgap.renku.image_mirror:
    mode: import
    bundle: /media/usb/bundle.tar
    destination: registry.site.example:5000
    destination_username: mirror
    destination_password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt
    lock_file: /srv/site/mirror-lock.yaml
"""

RETURN = r"""
images:
  description: The plan, one row per image.
  returned: always
  type: list
  elements: dict
  sample:
    - source: docker.io/library/alpine:3.20
      pulled_from: upstream.example/docker.io/library/alpine:3.20
      destination: registry.site.example:5000/mirror/docker.io/library/alpine:3.20
      action: copy
      size: 3456789
      digest: sha256:a4663f8b0c60c7411fbc0e7282a2c3aa6ef1e55003150d41b37e386855e5239a
      platforms: {linux/amd64: "sha256:4d70...", linux/arm64: "sha256:3f22..."}
      artifacts:
        - kind: signature
          tag: sha256-a4663f8b0c60c7411fbc0e7282a2c3aa6ef1e55003150d41b37e386855e5239a.sig
          digest: sha256:0b1c...
          media_type: application/vnd.oci.image.manifest.v1+json
          action: copy
stats:
  description:
    - Counts, bytes and seconds of this run (V(bytes_to_copy) in check mode); V(bytes_planned) is the size of
      the images found missing (blobs shared with images already there count too).
    - V(receipt) is V(trusted) (the set was found by its receipt), V(written), V(present), V(none), or
      V(not written) with the reason (the next rerun then asks for every tag).
  returned: always
  type: dict
  sample: {images_total: 18, images_copied: 3, images_present: 15, blobs_copied: 9, blobs_mounted: 2,
           blobs_present: 1, bytes_copied: 123456, bytes_planned: 130000, manifests_pushed: 5,
           manifests_verified: 5, artifacts_copied: 2, artifacts_present: 0, seconds: 1.2, receipt: written}
lock:
  description: The images section of the lock file this run produced.
  returned: always
  type: dict
  sample: {apiVersion: airgap.renku/v1, kind: MirrorLock, images: []}
lock_file:
  description: Path of the lock file written.
  returned: when O(lock_file) is set and no image failed
  type: str
  sample: /srv/site/mirror-lock.yaml
errors:
  description: Images that could not be planned, copied or verified.
  returned: always
  type: list
  elements: str
  sample: []
warnings_found:
  description: Discovery warnings (implicit latest, invalid references).
  returned: always
  type: list
  elements: str
  sample: ["Deployment/web spec.template.spec.containers[web]: 'nginx' has no tag"]
discovered:
  description: Every image mirrored and where it was found.
  returned: always
  type: dict
  sample: {"docker.io/library/busybox:1.36": ["oci://upstream/charts/hello[0] Deployment/mirror-hello ..."]}
rejected:
  description: Env/args strings that looked like image references but the source registry does not have.
  returned: always
  type: dict
  sample: {"docker.io/team/not-an-image:abc": ["Deployment/x ... env TOKEN"]}
outputs:
  description: Files generated under O(output_dir) and whether each changed.
  returned: when O(output_dir) is set
  type: list
  elements: dict
  sample: [{path: /srv/site/mirror/values/renku.yaml, changed: true}]
problems:
  description: Bundle checksum problems (V(verify_bundle) mode).
  returned: when O(mode=verify_bundle)
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common.options import CA_FILE_ARGSPEC
from ansible_collections.airgap.renku.plugins.module_utils.common.secrets import credential_forms
from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import CHART_SOURCE_OPTIONS
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import HAS_YAML
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import DEFAULT_NODE_CA_PATH
from ansible_collections.airgap.renku.plugins.module_utils.mirror.task import image_mirror_task
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import registry_destination_argspec

ARGUMENT_SPEC = dict(
    mode=dict(type="str", choices=["direct", "export", "import", "verify_bundle"], default="direct"),
    images=dict(type="list", elements="str", default=[]),
    charts=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            CHART_SOURCE_OPTIONS,
            release=dict(type="str", default="mirror"),
            values_sets=dict(type="list", elements="list", default=[]),
            values=dict(type="list", elements="dict", default=[]),
        ),
    ),
    manifest_files=dict(type="list", elements="path", default=[]),
    pod_spec_paths=dict(type="list", elements="str", default=[]),
    image_fields=dict(type="list", elements="str", default=[]),
    confirm_candidates=dict(type="bool", default=True),
    source_rewrites=dict(type="dict", default={}),
    source_credentials=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            registry=dict(type="str", required=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            ca_file=dict(type="path"),
        ),
    ),
    **registry_destination_argspec(prefix="mirror"),
    **CA_FILE_ARGSPEC,
    keep_registry_host=dict(type="bool", default=True),
    platforms=dict(type="list", elements="str", default=[]),
    artifacts=dict(type="str", choices=["all", "signatures", "none"], default="all"),
    parallel=dict(type="int", default=8),
    helm=dict(type="path", default="helm"),
    lock_file=dict(type="path"),
    refresh=dict(type="bool", default=False),
    bundle=dict(type="path"),
    bundle_archive=dict(type="path"),
    verify=dict(type="str", choices=["receipt", "tags", "full"], default="receipt"),
    progress_file=dict(type="path"),
    progress_interval=dict(type="float", default=5.0),
    output_dir=dict(type="path"),
    node_ca_path=dict(type="str", default=DEFAULT_NODE_CA_PATH),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    # passwords also travel URL-quoted and as base64 user:password (HTTP Basic, registry auth files)
    module.no_log_values.update(credential_forms(module.params))
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    result = image_mirror_task(module.params, module.check_mode, module._diff)
    for warning in result.get("warnings_found", []):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
