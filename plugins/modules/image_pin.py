#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_pin
short_description: Pin every image of rendered manifests to the internal registry by digest, from the mirror's lock file
version_added: "0.2.0"
description:
  - A pure transform over Kubernetes documents; it never talks to a cluster or a registry.
  - Replaces the image of every container, init container and ephemeral container of every pod template (all
    workload kinds, Helm hooks, the CRD paths in O(pod_spec_paths)) by its internal reference pinned by digest
    (C(registry.site/path@sha256:...)), as the mirror stage's lock file records it.
  - Whole values of ConfigMap C(data) and Secret C(stringData)/C(data) that name a mirrored image are pinned too;
    Renku names the images of every user session in its notebooks Secret.
  - Images may be written by their public name (C(renku/renku-ui:4.27.2)) or by the internal name a values overlay
    already gave them (C(registry.site/docker.io/renku/renku-ui:4.27.2)).
  - With O(strict=true), a container image the lock file does not have fails the task, naming the image and the
    workloads using it, before anything is applied.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.attributes.read_only
  - airgap.renku.requirements.pyyaml
  - airgap.renku.manifest_dest
attributes:
  diff_mode:
    support: none
    description: Nothing is changed on the target; RV(pinned) lists what was rewritten.
options:
  manifest:
    description:
      - Multi-document YAML text, for example the standard output of C(helm template). Read the way Kubernetes reads
        YAML (an unquoted C(=) or a timestamp stays a string; null lists count as empty).
      - Exactly one of O(manifest) and O(src) is required.
    type: str
  src:
    description:
      - Path to a multi-document YAML file on the controller.
    type: path
  lock_file:
    description:
      - The mirror stage's lock file (C(mirror_lock_file)), which records the source, internal destination and digest of every image.
    type: path
    required: true
  pod_spec_paths:
    description:
      - Extra pod spec locations in custom resources, as C(Kind:path.to.podspec).
    type: list
    elements: str
    default: []
  strict:
    description:
      - Fail when a container image is not in the lock file.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Render Renku
  ansible.builtin.command:
    argv: [helm, template, renku, /srv/charts/renku-2.19.3.tgz, --namespace, renku, --include-crds]
  register: rendered
  changed_when: false

- name: Pin every image to the internal registry
  airgap.renku.image_pin:
    manifest: "{{ rendered.stdout }}"
    lock_file: /srv/airgap/mirror/mirror-lock.yaml
  register: pinned

- name: The same for a chart that generates passwords, into a private file, every Secret value masked
  airgap.renku.image_pin:
    src: /run/deploy/rendered.yaml
    dest: /run/deploy/pinned.yaml
    lock_file: /srv/airgap/mirror/mirror-lock.yaml

- name: Make every document trust the site CA
  airgap.renku.ca_inject:
    manifest: "{{ pinned.manifest }}"
    ca_files: [/etc/pki/site/root-ca.crt]
    namespace: renku
"""

RETURN = r"""
manifest:
  description: The documents with every image pinned, as multi-document YAML.
  returned: when O(dest) is not set
  type: str
  sample: "apiVersion: apps/v1\nkind: Deployment\n..."
dest:
  description: The file the documents were written to.
  returned: when O(dest) is set
  type: str
  sample: /run/deploy/pinned.yaml
pinned:
  description: Each image reference that was rewritten and the internal reference it became.
  returned: always
  type: dict
  sample: {"renku/renku-ui:4.27.2": "registry.site/docker.io/renku/renku-ui@sha256:0123..."}
documents:
  description: How many documents were read.
  returned: always
  type: int
  sample: 114
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml
from ansible_collections.airgap.renku.plugins.module_utils.common.secrets import (
    MANIFEST_DEST_ARGSPEC,
    deliver_manifest,
    mask_input_secrets,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.outputs import LockError, pin_manifest


def _read(module: AnsibleModule, path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        module.fail_json(msg=f"{what} {path}: cannot read it: {exc}")
    return ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "manifest": {"type": "str"},
            "src": {"type": "path"},
            "lock_file": {"type": "path", "required": True},
            "pod_spec_paths": {"type": "list", "elements": "str", "default": []},
            "strict": {"type": "bool", "default": True},
            **MANIFEST_DEST_ARGSPEC,
        },
        mutually_exclusive=[("manifest", "src")],
        required_one_of=[("manifest", "src")],
        supports_check_mode=True,
    )
    if not kube_yaml.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=kube_yaml.YAML_IMPORT_ERROR)
    params = module.params
    mask_input_secrets(params["manifest"], params["dest"], module.no_log_values)
    text = params["manifest"] if params["manifest"] is not None else _read(module, params["src"], "src")
    lock_text = _read(module, params["lock_file"], "lock_file")
    try:
        result = pin_manifest(text, lock_text, params["pod_spec_paths"], params["strict"])
    except kube_yaml.KubeYAMLError as exc:
        module.fail_json(msg=f"cannot read the documents or the lock file: {exc}")
    except (LockError, ValueError) as exc:
        module.fail_json(msg=f"lock_file {params['lock_file']}: {exc}")
    try:
        result.update(deliver_manifest(result.pop("manifest"), params["dest"], module.no_log_values))
    except kube_yaml.KubeYAMLError as exc:
        module.fail_json(msg=f"cannot read the pinned documents: {exc}")
    except OSError as exc:
        module.fail_json(msg=f"dest {params['dest']}: cannot write it: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
