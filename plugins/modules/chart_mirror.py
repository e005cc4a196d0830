#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: chart_mirror
short_description: Copy Helm charts to an internal OCI registry with OCI-safe versions
version_added: "0.1.0"
description:
  - Pulls each chart from a classic chart repository or an OCI registry and pushes it to
    O(destination) under O(prefix).
  - Versions are made OCI-safe; a leading V(v) is removed (the chart is repackaged with the new
    version), and C(+) build metadata stays in C(Chart.yaml) while the OCI tag carries C(_), as Helm
    does on push and reverses on pull.
  - Only a chart whose version must change is rebuilt. Any other keeps its digests; a chart from an OCI
    registry is copied blob for blob, with the source's manifest digest; a package from a classic repository
    (or a file) is pushed as it is, so the layer digest at the destination is the package's sha256, checked
    against the checksum in the repository's C(index.yaml).
  - A chart the destination already holds as it should be (the source's manifest digest, the published
    package as its layer, or any push of a rebuilt chart) is not pushed again.
  - Records the mapping in the C(charts) section of O(lock_file), keeping the other sections.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.registry_destination
  - airgap.renku.ca_file
  - airgap.renku.requirements.helm
  - airgap.renku.requirements.pyyaml
attributes:
  check_mode:
    support: full
    description: Reports what would be pushed; pulls and pushes nothing.
  diff_mode:
    support: full
    description: Shows the lock file before and after.
options:
  charts:
    description: Charts to mirror. One of O(charts) and O(packages_dir) is required.
    type: list
    elements: dict
    suboptions:
      chart:
        description: V(oci://host/path/name), a chart name in O(charts[].repo), a local C(.tgz) file or chart directory.
        type: str
        required: true
      repo:
        description: Classic chart repository URL.
        type: str
      version:
        description:
          - Chart version as the source publishes it (V(v1.2.3) allowed), or a range as Helm dependencies
            write them (V(2.x.x), V(~1.2), V(^0.4.1), V(>=1.0.0 <2.0.0), V(1.x || 2.x)).
          - A range resolves to the newest version the source offers (its OCI tags or its C(index.yaml)); the
            lock file records the range and the version, and later runs keep that version (see O(update_ranges)).
        type: str
        required: true
      name:
        description: Name at the destination; the last path component of O(charts[].chart) by default.
        type: str
      username:
        description: Chart repository user.
        type: str
      password:
        description: Chart repository password or token.
        type: str
  # destination, destination_username, destination_password: doc fragment registry_destination
  prefix:
    default: charts
  download_dir:
    description:
      - Export side of a bundle. Instead of pushing to O(destination), write each chart (version made OCI-safe) as
        C(<name>-<version>.tgz) into this directory with an index C(charts.yaml); the offline side
        pushes those files (O(charts[].chart) may be a local C(.tgz) path).
      - One of O(destination) and O(download_dir) is required.
    type: path
  packages_dir:
    description:
      - Offline side of a bundle. Push every package listed in C(charts.yaml) of this directory (as
        written with O(download_dir)) instead of O(charts).
    type: path
  helm:
    description: Helm binary.
    type: path
    default: helm
  lock_file:
    description: Lock file whose C(charts) section records the mapping.
    type: path
  update_ranges:
    description:
      - Resolve every version range to the newest version the source offers now, even when O(lock_file)
        recorded an older one.
      - Without it, a range keeps the version the lock file recorded and a newer match is only reported in
        RV(drift) (and as a warning); nothing is pushed for it.
    type: bool
    default: false
seealso:
  - module: airgap.renku.image_mirror
"""

EXAMPLES = r"""
- name: Offline side - push the charts a bundle carries
  airgap.renku.chart_mirror:
    packages_dir: /media/usb/bundle/charts
    destination: registry.site.example:5000
    destination_username: mirror
    destination_password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt

- name: Mirror the Renku chart and a chart with a v-prefixed version
  airgap.renku.chart_mirror:
    charts:
      - chart: renku
        repo: https://charts.connected.example/renku
        version: 2.19.3
      - chart: oci://registry.connected.example/charts/tool
        version: v1.2.3
      - chart: oci://registry.connected.example/bitnamicharts/common
        version: 2.x.x
    destination: registry.site.example:5000
    destination_username: mirror
    destination_password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt
    lock_file: /srv/site/mirror-lock.yaml
"""

RETURN = r"""
charts:
  description:
    - The mapping, one item per chart; C(action) is V(copy) (blob for blob from an OCI registry), V(push),
      V(download), V(index) or V(present).
    - C(digest) is the manifest digest at the destination; C(source_digest) the manifest digest at an OCI
      source (equal to C(digest) unless the chart was rebuilt); C(package_digest) the sha256 of the package as
      published (a classic repository or a file) and C(layer_digest) the chart layer at the destination
      (equal to C(package_digest) unless the chart was rebuilt); C(repackaged) says why a chart was rebuilt.
    - With O(download_dir), C(file) replaces C(destination) and C(digest).
  returned: always
  type: list
  elements: dict
  sample:
    - name: tool
      source: oci://registry.connected.example/charts/tool
      version: v1.2.3
      oci_version: 1.2.3
      oci_tag: 1.2.3
      destination: oci://registry.site.example:5000/charts/tool
      digest: sha256:0b5e1c5f8e2b9d3b6a4c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2
      source_digest: sha256:5d1c0e9b7a3f2e8d6c4b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d
      layer_digest: sha256:9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e
      repackaged: "version v1.2.3 is published as 1.2.3 (leading v removed): Chart.yaml rewritten, package rebuilt"
      action: push
      file: tool-1.2.3.tgz
drift:
  description:
    - Version ranges whose newest match at the source is no longer the version the lock file recorded.
    - C(updated) is true when this run moved to C(latest) (O(update_ranges)), false when it kept C(locked).
  returned: always
  type: list
  elements: dict
  sample:
    - name: common
      source: oci://registry.connected.example/bitnamicharts/common
      version_range: 2.x.x
      locked: 2.27.0
      latest: 2.31.10
      updated: false
lock_file:
  description: Path of the lock file written.
  returned: when O(lock_file) is set
  type: str
  sample: /srv/site/mirror-lock.yaml
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common.options import CA_FILE_ARGSPEC
from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import CHART_SOURCE_OPTIONS, ChartMirrorError
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import HAS_YAML
from ansible_collections.airgap.renku.plugins.module_utils.mirror.run import run_charts
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import ChartMirrorSettings, MirrorParamError
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    RegistryError,
    registry_destination_argspec,
)

ARGUMENT_SPEC = dict(
    charts=dict(
        type="list",
        elements="dict",
        options=dict(
            CHART_SOURCE_OPTIONS,
            version=dict(type="str", required=True),
            name=dict(type="str"),
        ),
    ),
    **registry_destination_argspec(prefix="charts"),
    **CA_FILE_ARGSPEC,
    download_dir=dict(type="path"),
    packages_dir=dict(type="path"),
    helm=dict(type="path", default="helm"),
    lock_file=dict(type="path"),
    update_ranges=dict(type="bool", default=False),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_one_of=[["destination", "download_dir"], ["charts", "packages_dir"]],
        mutually_exclusive=[
            ["destination", "download_dir"],
            ["charts", "packages_dir"],
            ["download_dir", "packages_dir"],
        ],
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    try:
        result = run_charts(ChartMirrorSettings.from_params(module.params), module.check_mode)
    except (ChartMirrorError, RegistryError, MirrorParamError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff", None)
    for moved in result.get("drift", []):
        if not moved["updated"]:
            module.warn(
                f"{moved['source']} {moved['version_range']}: the source now offers {moved['latest']}; "
                f"kept {moved['locked']} as the lock file records (update_ranges=true moves to it)"
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
