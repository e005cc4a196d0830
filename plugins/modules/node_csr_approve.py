#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_csr_approve
short_description: Approve the kubelet certificate requests of inventory nodes, and only those
version_added: "0.1.0"
description:
  - Reads the pending CertificateSigningRequests and approves the kubelet ones that name a node of O(nodes) exactly.
  - A C(kubernetes.io/kube-apiserver-client-kubelet) request is approved when its subject is
    C(CN=system:node:<name>, O=system:nodes) of an inventory node, it carries no subject alternative names and
    asks for client usages. Once a node has joined, only the node itself may renew that certificate.
  - A C(kubernetes.io/kubelet-serving) request is approved when the node itself (C(system:node:<name>)) asks for
    it with the same subject and exactly the DNS names and IP addresses the inventory gives that node.
  - Every other pending request is left alone and reported with the reason (RV(left)); with O(deny=true) the
    kubelet ones among them are denied. Requests of other signers are never touched.
  - With O(wait_timeout), the module repeats until every node of O(nodes) has joined (its Node object exists)
    or the time is up, approving the serving requests of nodes as they join.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.kube_auth
  - airgap.renku.requirements.cryptography
attributes:
  check_mode:
    support: full
    description: Decides once and reports what it would approve and deny; writes nothing and never waits.
  diff_mode:
    support: full
    description: The decision of every request it approves or denies, before and after.
options:
  nodes:
    description:
      - The nodes that may join, for example from the bare-metal inventory.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The node name (the kubelet's C(system:node:<name>)).
        type: str
        required: true
      addresses:
        description:
          - The node's IP addresses; a serving request must name exactly these.
        type: list
        elements: str
        default: []
      dns_names:
        description:
          - The node's DNS names; a serving request must name exactly these. Defaults to the node name.
        type: list
        elements: str
  deny:
    description:
      - Deny the pending kubelet requests that do not match instead of leaving them pending.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to keep approving until every node of O(nodes) has joined; C(0) makes one pass.
    type: int
    default: 0
  wait_sleep:
    description:
      - Seconds between passes while waiting.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Approve the kubelet certificates of the site's nodes until they have joined
  airgap.renku.node_csr_approve:
    kubeconfig: /etc/airgap/admin.kubeconfig
    nodes: "{{ baremetal_site | airgap.renku.baremetal_csr_nodes }}"
    wait_timeout: 1800

- name: One pass, denying kubelet requests that are not the inventory's
  airgap.renku.node_csr_approve:
    kubeconfig: /etc/airgap/admin.kubeconfig
    nodes:
      - name: worker-0.ocp.example.org
        addresses: [172.16.10.41]
    deny: true
"""

RETURN = r"""
approved:
  description: The requests approved (or, in check mode, that would be).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "csr-7x2kq", "signer": "kubernetes.io/kubelet-serving", "username": "system:node:worker-0",
            "node": "worker-0", "action": "approve", "reason": "kubelet serving certificate of inventory node worker-0"}]
denied:
  description: The requests denied (only with O(deny=true)).
  returned: always
  type: list
  elements: dict
  sample: []
left:
  description: The pending requests left alone, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "csr-9f3ab", "signer": "kubernetes.io/kubelet-serving", "username": "system:node:worker-1",
            "node": "worker-1", "action": "leave",
            "reason": "IP addresses ['10.0.0.9'] are not the inventory's ['10.0.0.32']"}]
joined:
  description: Nodes of O(nodes) that have joined the cluster.
  returned: always
  type: list
  elements: str
  sample: ["master-0", "master-1"]
missing:
  description: Nodes of O(nodes) that have not joined (yet).
  returned: always
  type: list
  elements: str
  sample: ["worker-1"]
passes:
  description: How many times the requests were read and judged.
  returned: always
  type: int
  sample: 3
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import csr
from ansible_collections.airgap.renku.plugins.module_utils.common.kube import (
    HAS_KUBERNETES,
    KUBE_AUTH_ARGSPEC,
    KUBERNETES_IMPORT_ERROR,
    KubeAuth,
    KubeAuthError,
    api_error_message,
    build_api_client,
)

ARGUMENT_SPEC: dict[str, Any] = {
    **KUBE_AUTH_ARGSPEC,
    "nodes": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "name": {"type": "str", "required": True},
            "addresses": {"type": "list", "elements": "str", "default": []},
            "dns_names": {"type": "list", "elements": "str"},
        },
    },
    "deny": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 0},
    "wait_sleep": {"type": "int", "default": 5},
}


def _diff(outcome: csr.Outcome) -> dict[str, Any]:
    decided = outcome.approved + outcome.denied
    return {
        "before": {v["name"]: "Pending" for v in decided},
        "after": {v["name"]: "Approved" if v["action"] == "approve" else "Denied" for v in decided},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    if not csr.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    if module.params["wait_timeout"] < 0 or module.params["wait_sleep"] < 1:
        module.fail_json(msg="wait_timeout must be 0 or more seconds and wait_sleep at least 1 second")
    try:
        nodes = csr.inventory_nodes(module.params["nodes"])
        api = csr.CsrApi(build_api_client(KubeAuth.from_params(module.params)))
    except (csr.CsrError, KubeAuthError) as exc:
        module.fail_json(msg=str(exc))
    try:
        outcome = csr.run(
            api,
            nodes,
            deny=module.params["deny"],
            check_mode=module.check_mode,
            wait_timeout=module.params["wait_timeout"],
            wait_sleep=module.params["wait_sleep"],
        )
    except Exception as exc:  # ApiException and urllib3 errors: explain the likely cause
        module.fail_json(msg=api_error_message(exc, "certificate signing requests"))
    result: dict[str, Any] = {
        "changed": bool(outcome.approved or outcome.denied),
        "approved": outcome.approved,
        "denied": outcome.denied,
        "left": list(outcome.left.values()),
        "joined": outcome.joined,
        "missing": outcome.missing,
        "passes": outcome.passes,
    }
    if module._diff:
        result["diff"] = _diff(outcome)
    if outcome.timed_out:
        module.fail_json(
            msg=f"nodes {', '.join(outcome.missing)} had not joined after {module.params['wait_timeout']}s; "
            "see 'left' for the requests that were not approved and why",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
