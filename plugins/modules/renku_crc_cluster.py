#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: renku_crc_cluster
short_description: Register a remote session cluster and its resource pool with the Renku data-service
version_added: 0.1.0
description:
  - Creates or updates a cluster configuration and, optionally, a resource pool on that cluster through the
    Renku data-service compute resource control API (C(/api/data/clusters), C(/api/data/resource_pools)).
  - Validates the payloads first against the API contract of renku-data-services v0.79.0 and the remote-cluster
    rules (name length, C(config_name) pattern, exactly one of TLS secret and default certificate for https,
    non-public pool, one default class, classes within the quota), so nothing is called when the input is wrong.
  - "Handles the v0.79.0 quirk that C(POST /clusters) ignores C(session_ingress_use_default_cluster_tls_cert):
    the flag is PATCHed after creation and the stored record is read back to confirm."
  - With the default cluster certificate, C(session_tls_secret_name) is sent as an empty string, as Renku's
    remote-cluster documentation requires.
  - "Authenticates as Renku's data-service expects: a bearer access token issued by Renku's Keycloak realm to a user
    with the realm role C(renku-admin). Give the token (O(api_token)) or let the module obtain one with a password
    grant (O(token_request)); an obtained token is never returned or logged."
author:
  - airgap.renku maintainers (@airgap-renku)
attributes:
  check_mode:
    support: full
    description: Only reads; reports what would be created or updated.
  diff_mode:
    support: full
    description: Before and after records of the cluster and the resource pool.
options:
  api_url:
    description:
      - Base URL of the data-service API, for example V(https://renku.example.org/api/data).
    type: str
    required: true
  api_token:
    description:
      - Access token of a Renku admin (a user with the Keycloak realm role C(renku-admin)).
      - Exactly one of O(api_token) and O(token_request) is required.
    type: str
  token_request:
    description:
      - Obtain the access token from Keycloak with a password grant of a Renku admin user.
    type: dict
    suboptions:
      url:
        description: Base URL of Keycloak, for example V(https://renku.example.org/auth).
        type: str
        required: true
      realm:
        description: Realm of Renku's users.
        type: str
        default: Renku
      client_id:
        description: Client that allows direct access grants and whose tokens the data-service accepts.
        type: str
        default: renku-cli
      client_secret:
        description: Secret of O(token_request.client_id) when it is a confidential client.
        type: str
      username:
        description: The Renku admin user.
        type: str
        required: true
      password:
        description: Password of O(token_request.username).
        type: str
        required: true
      ca_file:
        description: CA bundle that signs Keycloak's certificate. TLS is always verified.
        type: path
  ca_file:
    description:
      - CA bundle that signs the data-service certificate. TLS is always verified.
    type: path
  timeout:
    description:
      - Seconds per request.
    type: int
    default: 30
  cluster:
    description:
      - The cluster configuration (schema C(Cluster) of the API).
    type: dict
    required: true
    suboptions:
      name:
        description: Display name, at least 5 characters; the key used to find the record again.
        type: str
        required: true
      config_name:
        description: Key of the kubeconfig in the remote-clusters Secret, matching C(^[a-zA-Z0-9._-]+[.]yaml$).
        type: str
        required: true
      session_protocol:
        description: Protocol of session URLs.
        type: str
        choices: [http, https]
        default: https
      session_host:
        description: Host name of session URLs on the remote cluster.
        type: str
        required: true
      session_port:
        description: Port of session URLs.
        type: int
        default: 443
      session_path:
        description: Path prefix of session URLs.
        type: str
        default: /sessions
      session_ingress_class_name:
        description: Ingress class for session ingresses.
        type: str
      session_ingress_annotations:
        description: Annotations for session ingresses.
        type: dict
        default: {}
      session_tls_secret_name:
        description: TLS Secret of session ingresses; with https exactly one of this and the default-cert flag.
        type: str
      session_ingress_use_default_cluster_tls_cert:
        description: Use the ingress controller's default certificate for sessions.
        type: bool
        default: false
      session_storage_class:
        description: StorageClass of session volumes.
        type: str
      service_account_name:
        description: ServiceAccount of session pods.
        type: str
  resource_pool:
    description:
      - A resource pool whose sessions run on the cluster (schema C(ResourcePool)); omit to register only the cluster.
    type: dict
    suboptions:
      name:
        description: Pool name, at least 5 characters; the key used to find it again.
        type: str
        required: true
      public:
        description: Must be false for a remote cluster pool.
        type: bool
        default: false
      default:
        description: Whether this is the default pool.
        type: bool
        default: false
      quota:
        description: C(cpu), C(memory) (GB), C(gpu) and C(id); the id is the PriorityClass name on the remote cluster.
        type: dict
        required: true
      classes:
        description: Resource classes (C(name), C(cpu), C(memory), C(gpu), C(max_storage), C(default_storage), C(default), ...).
        type: list
        elements: dict
        required: true
      idle_threshold:
        description: Seconds of idleness before hibernation (0 for none).
        type: int
      hibernation_threshold:
        description: Seconds of hibernation before deletion (0 for none).
        type: int
      platform:
        description: Runtime platform of the pool.
        type: str
        choices: [linux/amd64, linux/arm64]
  state:
    description:
      - V(absent) deletes the resource pool, then the cluster.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Register remote cluster A with a small GPU-less pool
  airgap.renku.renku_crc_cluster:
    api_url: https://renku.example.org/api/data
    token_request:
      url: https://renku.example.org/auth
      username: renku-automation
      password: "{{ vault_renku_automation_password }}"
      ca_file: /etc/pki/site-root-ca.pem
    ca_file: /etc/pki/site-root-ca.pem
    cluster:
      name: remote-cluster-a
      config_name: remote-a.yaml
      session_host: sessions.remote-a.example.org
      session_ingress_class_name: nginx
      session_ingress_use_default_cluster_tls_cert: true
      session_storage_class: local-path
    resource_pool:
      name: remote-a-standard
      quota: {cpu: 32, memory: 128, gpu: 0, id: renku-remote-a-standard}
      classes:
        - {name: small, cpu: 1, memory: 2, max_storage: 20, default_storage: 1, default: true}
        - {name: large, cpu: 4, memory: 16, max_storage: 50, default_storage: 10}
"""

RETURN = r"""
cluster:
  description: The stored cluster record (after the quirk fix-up); in check mode the record as it would be.
  returned: state is present
  type: dict
  sample: {"id": "01JB2ZK5V0Q8", "name": "remote-cluster-a", "config_name": "remote-a.yaml"}
cluster_id:
  description: ULID of the cluster; null in check mode before creation.
  returned: state is present
  type: str
  sample: 01JB2ZK5V0Q8MDZ3RX4N2W5C7D
resource_pool:
  description: The stored resource pool record.
  returned: state is present and O(resource_pool) is set
  type: dict
  sample: {"id": 3, "name": "remote-a-standard", "public": false}
resource_pool_id:
  description: Id of the resource pool; null in check mode before creation.
  returned: state is present and O(resource_pool) is set
  type: int
  sample: 3
actions:
  description: What was (or in check mode would be) done.
  returned: always
  type: list
  elements: str
  sample: ["create cluster remote-cluster-a", "create resource pool remote-a-standard"]
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.airgap.renku.plugins.module_utils.remote import data_service as crc

CLUSTER_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "config_name": {"type": "str", "required": True},
    "session_protocol": {"type": "str", "choices": ["http", "https"], "default": "https"},
    "session_host": {"type": "str", "required": True},
    "session_port": {"type": "int", "default": 443},
    "session_path": {"type": "str", "default": "/sessions"},
    "session_ingress_class_name": {"type": "str"},
    "session_ingress_annotations": {"type": "dict", "default": {}},
    "session_tls_secret_name": {"type": "str", "no_log": False},
    "session_ingress_use_default_cluster_tls_cert": {"type": "bool", "default": False},
    "session_storage_class": {"type": "str"},
    "service_account_name": {"type": "str"},
}
TOKEN_REQUEST_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "realm": {"type": "str", "default": "Renku"},
    "client_id": {"type": "str", "default": "renku-cli"},
    "client_secret": {"type": "str", "no_log": True},
    "username": {"type": "str", "required": True},
    "password": {"type": "str", "required": True, "no_log": True},
    "ca_file": {"type": "path"},
}
POOL_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "public": {"type": "bool", "default": False},
    "default": {"type": "bool", "default": False},
    "quota": {"type": "dict", "required": True},
    "classes": {"type": "list", "elements": "dict", "required": True},
    "idle_threshold": {"type": "int"},
    "hibernation_threshold": {"type": "int"},
    "platform": {"type": "str", "choices": ["linux/amd64", "linux/arm64"]},
}
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "api_url": {"type": "str", "required": True},
    "api_token": {"type": "str", "no_log": True},
    "token_request": {"type": "dict", "options": TOKEN_REQUEST_SPEC, "no_log": False},
    "ca_file": {"type": "path"},
    "timeout": {"type": "int", "default": 30},
    "cluster": {"type": "dict", "required": True, "options": CLUSTER_SPEC},
    "resource_pool": {"type": "dict", "options": POOL_SPEC},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def _result(outcome: crc.CrcResult, state: str) -> dict[str, Any]:
    result: dict[str, Any] = {"changed": outcome.changed, "actions": outcome.actions}
    if state == "present":
        result["cluster"] = outcome.cluster
        result["cluster_id"] = (outcome.cluster or {}).get("id")
        if outcome.pool is not None:
            result["resource_pool"] = outcome.pool
            result["resource_pool_id"] = outcome.pool.get("id")
    return result


def _token(module: AnsibleModule) -> str:
    """The given token, or one obtained from Keycloak; either way never echoed."""
    p = module.params
    if p["api_token"]:
        module.no_log_values.add(p["api_token"])
        return p["api_token"]
    token = crc.fetch_token(crc.TokenRequest(**p["token_request"]), p["timeout"], open_url)
    module.no_log_values.add(token)
    return token


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("api_token", "token_request")],
        required_one_of=[("api_token", "token_request")],
        supports_check_mode=True,
    )
    p = module.params
    pool = p["resource_pool"]
    try:
        client = crc.CrcClient(p["api_url"], _token(module), p["ca_file"], p["timeout"], open_url)
        if p["state"] == "absent":
            outcome = crc.ensure_absent(client, p["cluster"]["name"], (pool or {}).get("name"), module.check_mode)
        else:
            outcome = crc.ensure_present(client, p["cluster"], pool, module.check_mode)
    except crc.CrcError as exc:
        module.fail_json(msg=str(exc))
    result = _result(outcome, p["state"])
    if module._diff:
        after = {} if p["state"] == "absent" else {"cluster": outcome.cluster, "resource_pool": outcome.pool}
        result["diff"] = {"before": outcome.before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
