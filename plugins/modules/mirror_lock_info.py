#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_lock_info
short_description: Read the mirror stage's lock file and say whether it is fit for the chart about to be deployed
version_added: "0.2.0"
description:
  - Reads the lock file the mirror stage writes (C(mirror_lock_file)) and returns it with RV(problems), the reasons
    it cannot serve the deployment, each naming the stage to run first (C(ansible-playbook playbooks/mirror.yml)).
  - A missing file, a file that is not a mirror lock, or a lock without images is a problem.
  - With O(chart), the lock must record that chart at O(chart_version); a lock written for another version is
    older than the inventory.
  - With O(check_registry=true), the internal registry is asked for the chart's tag; a digest other than the one
    the lock recorded means the chart was pushed again after the lock was written.
  - The platform stage (roles C(renku), C(helm_airgap)) asserts that RV(problems) is empty before rendering.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.attributes.read_only
  - airgap.renku.ca_file
  - airgap.renku.requirements.pyyaml
options:
  path:
    description:
      - The lock file.
    type: path
    required: true
  chart:
    description:
      - The chart in the internal OCI registry the platform stage deploys, as C(oci://host/path/name), as the
        lock's C(charts) section records it. Not checked when empty or not an C(oci://) reference.
    type: str
    default: ""
  chart_version:
    description:
      - The version of O(chart) to find in the lock, as published or made OCI-safe.
    type: str
    default: ""
  check_registry:
    description:
      - Ask the internal registry whether O(chart) at O(chart_version) still has the digest the lock recorded.
    type: bool
    default: false
  username:
    description:
      - User for the registry of O(chart).
    type: str
  password:
    description:
      - Password or token of O(username).
    type: str
seealso:
  - module: airgap.renku.image_mirror
  - module: airgap.renku.chart_mirror
"""

EXAMPLES = r"""
- name: Read the mirror lock and check it covers the chart to deploy
  airgap.renku.mirror_lock_info:
    path: /srv/airgap/mirror/mirror-lock.yaml
    chart: oci://registry.site.example:5000/charts/renku
    chart_version: 2.19.3
    check_registry: true
    username: mirror
    password: "{{ vault_registry_password }}"
    ca_file: /etc/pki/site-ca.crt
  register: mirror_lock

- name: Stop when the mirror stage must run first
  ansible.builtin.assert:
    that: mirror_lock.problems | length == 0
    fail_msg: "{{ mirror_lock.problems | join('; ') }}"
"""

RETURN = r"""
lock:
  description: The lock file's content; empty when it does not exist.
  returned: always
  type: dict
  sample: {apiVersion: airgap.renku/v1, kind: MirrorLock, images: [], charts: []}
chart:
  description: The lock's entry for O(chart) at O(chart_version).
  returned: when O(chart) is found in the lock
  type: dict
  sample: {name: renku, version: 2.19.3, oci_tag: 2.19.3, destination: oci://registry.site.example:5000/charts/renku,
           digest: "sha256:0b5e1c5f8e2b9d3b6a4c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2"}
problems:
  description: Why the lock cannot serve the deployment, each saying which stage to run first; empty when it can.
  returned: always
  type: list
  elements: str
  sample: ["mirror lock file /srv/airgap/mirror/mirror-lock.yaml does not exist; run the mirror stage first
            (ansible-playbook playbooks/mirror.yml), which writes it"]
"""

import os
from typing import Any, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml
from ansible_collections.airgap.renku.plugins.module_utils.common.options import CA_FILE_ARGSPEC

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    chart=dict(type="str", default=""),
    chart_version=dict(type="str", default=""),
    check_registry=dict(type="bool", default=False),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    **CA_FILE_ARGSPEC,
)


def registry_digest(params: Dict[str, Any], entry: Dict[str, Any]) -> Optional[str]:
    """The digest the internal registry serves now for the chart `entry` records."""
    from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Registry

    host, _sep, repo = entry["destination"][len("oci://") :].partition("/")
    registry = Registry(host, params["ca_file"], params["username"], params["password"])
    try:
        return registry.manifest_digest(repo, str(entry.get("oci_tag") or entry.get("oci_version")))
    finally:
        registry.close()


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not kube_yaml.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=kube_yaml.YAML_IMPORT_ERROR)
    from ansible_collections.airgap.renku.plugins.module_utils.mirror import lock as mirror_lock
    from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import RegistryError

    params = module.params
    path = params["path"]
    try:
        lock = mirror_lock.read_lock(path)
    except kube_yaml.KubeYAMLError as exc:
        module.fail_json(msg=f"path: {exc}; {mirror_lock.MIRROR_STAGE} to write it again")
    problems: List[str] = mirror_lock.lock_problems(lock, path, os.path.exists(path))
    result: Dict[str, Any] = {"changed": False, "lock": lock}
    chart, version = params["chart"], params["chart_version"]
    if not problems and chart.startswith("oci://"):
        problems = mirror_lock.chart_problems(lock, path, chart, version)
        entry = mirror_lock.locked_chart(lock, chart, version)
        if entry is not None:
            result["chart"] = entry
        if entry is not None and params["check_registry"]:
            try:
                stale = mirror_lock.chart_digest_problem(entry, path, registry_digest(params, entry))
            except (RegistryError, OSError) as exc:
                module.fail_json(msg=f"cannot ask the internal registry for {chart}: {exc}")
            problems += [stale] if stale else []
    module.exit_json(problems=problems, **result)


if __name__ == "__main__":
    main()
