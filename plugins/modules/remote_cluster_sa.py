#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: remote_cluster_sa
short_description: Service account, RBAC and token for a kubeconfig on a (remote) cluster
version_added: 0.1.0
description:
  - Creates a namespace, a ServiceAccount, a Role (with the given rules, by default the rules the Renku
    data-service needs on a remote session cluster) or a binding to an existing ClusterRole, a RoleBinding,
    and a C(kubernetes.io/service-account-token) Secret created after the ServiceAccount.
  - Waits until the token controller has filled the Secret and fails clearly when it never does.
  - With O(token_mode=request) no Secret is made; a bounded token is obtained through the TokenRequest API.
  - Returns the API server URL, the CA, the namespace and the token, ready for M(airgap.renku.kubeconfig_build).
  - With O(token_path) the token is written to that file (mode C(0600)) and masked wherever it would appear in
    the result, the diff or an error (Ansible's C(no_log_values)); pass the file on with
    M(airgap.renku.kubeconfig_build)'s O(airgap.renku.kubeconfig_build#module:token_file). The base64 form of
    the token (a Secret's C(data.token)) is always masked.
  - Check mode uses the API server's dry run, so nothing is written.
  - A namespace this module deletes (V(absent)) is waited for until it is gone, as C(kubectl delete) waits. A
    namespace still being deleted when V(present) runs takes no new content, so the module waits until it is gone
    (up to 120 seconds) and creates it again; check mode reports it as to be created.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.kube_auth
attributes:
  check_mode:
    support: full
    description: Every write is sent with the API server's dry run.
  diff_mode:
    support: full
    description: Shows the owned fields of every object; Secret data is masked.
options:
  namespace:
    description:
      - Namespace of the ServiceAccount and its RBAC objects.
    type: str
    required: true
  name:
    description:
      - Name of the ServiceAccount; also the default name of the Role and the RoleBinding.
    type: str
    required: true
  rules:
    description:
      - PolicyRules of the Role. When neither O(rules) nor O(cluster_role) is set, the Renku data-service
        rules for remote session clusters are used.
      - Mutually exclusive with O(cluster_role).
    type: list
    elements: dict
  image_builder_rules:
    description:
      - Add the rule for C(shipwright.io/buildruns) to the default rules (Renku image builders enabled).
      - Only used when O(rules) and O(cluster_role) are unset.
    type: bool
    default: false
  cluster_role:
    description:
      - Bind this existing ClusterRole inside O(namespace) instead of creating a Role, for example V(admin).
    type: str
  role_name:
    description:
      - Name of the Role; O(name) when omitted.
    type: str
  binding_name:
    description:
      - Name of the RoleBinding; O(name) when omitted.
    type: str
  secret_name:
    description:
      - Name of the token Secret; C(<name>-token) when omitted.
    type: str
  create_namespace:
    description:
      - Create O(namespace) when it does not exist. A namespace created here carries the label
        C(app.kubernetes.io/managed-by=airgap.renku) and is deleted again by O(state=absent).
    type: bool
    default: true
  labels:
    description:
      - Labels added to every object.
    type: dict
    default: {}
  token_mode:
    description:
      - V(secret) makes a long-lived token Secret; V(request) asks the TokenRequest API for a token that
        expires after O(token_duration).
    type: str
    choices: [secret, request]
    default: secret
  token_duration:
    description:
      - Lifetime in seconds of a requested token (O(token_mode=request)); 600 to 31622400.
    type: int
    default: 3600
  token_timeout:
    description:
      - Seconds to wait for the token controller to fill the Secret.
    type: int
    default: 60
  server:
    description:
      - API server URL to return, for example the address of a load balancer in front of the cluster.
      - Defaults to the URL this module connected to.
    type: str
  server_ca_file:
    description:
      - PEM file of the CA that signs the certificate served at O(server), returned instead of the Secret's
        C(ca.crt) (for a load balancer terminating TLS with a site certificate).
    type: path
  token_path:
    description:
      - Write the token to this file (atomically, mode C(0600)) and mask it in every output of the module;
        RV(token) then reads C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER). Not written in check mode.
      - Without it the token is returned usable in RV(token); register the result with C(no_log) and never
        loop over it, since a loop shows each item in clear.
    type: path
  state:
    description:
      - V(present) creates or updates; V(absent) deletes what V(present) makes.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Service account for the Renku data-service on the remote session cluster
  airgap.renku.remote_cluster_sa:
    kubeconfig: /etc/renku/remote-admin.kubeconfig
    namespace: renku-sessions
    name: renku-data-service
  register: remote_sa
  no_log: true

- name: Deployer of team-a; the token goes to a file and is masked in every output
  airgap.renku.remote_cluster_sa:
    kubeconfig: /etc/kubernetes/admin.conf
    namespace: team-a
    name: gitlab-deployer
    cluster_role: admin
    token_path: /srv/deployers/team-a.token
  register: deployer_sa

- name: Deployer bound to the ClusterRole admin in one namespace, with an expiring token
  airgap.renku.remote_cluster_sa:
    kubeconfig: /etc/kubernetes/admin.conf
    namespace: team-a
    name: gitlab-deployer
    cluster_role: admin
    token_mode: request
    token_duration: 86400
    server: https://k8s.example.internal:6443
    server_ca_file: /etc/pki/site-root-ca.pem
  register: deployer
  no_log: true

- name: Remove it again
  airgap.renku.remote_cluster_sa:
    kubeconfig: /etc/kubernetes/admin.conf
    namespace: team-a
    name: gitlab-deployer
    cluster_role: admin
    state: absent
"""

RETURN = r"""
server:
  description: API server URL for the kubeconfig.
  returned: state is present
  type: str
  sample: https://k8s.example.internal:6443
ca_pem:
  description: PEM of the CA for O(server) (the Secret's C(ca.crt), the namespace's C(kube-root-ca.crt), or O(server_ca_file)).
  returned: state is present
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
ca_data:
  description: RV(ca_pem) base64-encoded, as kubeconfig C(certificate-authority-data) wants it.
  returned: state is present
  type: str
  sample: LS0tLS1CRUdJTi...
namespace:
  description: The namespace.
  returned: always
  type: str
  sample: renku-sessions
service_account:
  description: Name of the ServiceAccount.
  returned: always
  type: str
  sample: renku-data-service
token:
  description:
    - Bearer token of the ServiceAccount. Empty in check mode when the objects do not exist yet.
    - Masked (C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER)) when O(token_path) is set, the token being in that file;
      otherwise usable, so run the task with C(no_log) to keep it out of logs.
  returned: state is present
  type: str
  sample: eyJhbGciOiJSUzI1NiIs...
token_path:
  description: The file holding the token; returned once it does (not in check mode before the first write).
  returned: when O(token_path) is set and the file holds the token
  type: str
  sample: /srv/deployers/team-a.token
token_expiration:
  description: Expiry of a requested token (O(token_mode=request)), else null.
  returned: state is present
  type: str
  sample: "2026-11-24T12:00:00Z"
actions:
  description: What was (or in check mode would be) created, updated, replaced or deleted.
  returned: always
  type: list
  elements: str
  sample: ["create ServiceAccount/renku-data-service", "create Secret/renku-data-service-token"]
"""

import base64
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common.kube import (
    HAS_KUBERNETES,
    KUBE_AUTH_ARGSPEC,
    KUBERNETES_IMPORT_ERROR,
    KubeAuth,
    KubeAuthError,
    api_error_message,
    build_api_client,
)
from ansible_collections.airgap.renku.plugins.module_utils.remote import service_account as sa

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    **KUBE_AUTH_ARGSPEC,
    "namespace": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "rules": {"type": "list", "elements": "dict"},
    "image_builder_rules": {"type": "bool", "default": False},
    "cluster_role": {"type": "str"},
    "role_name": {"type": "str"},
    "binding_name": {"type": "str"},
    "secret_name": {"type": "str"},
    "create_namespace": {"type": "bool", "default": True},
    "labels": {"type": "dict", "default": {}},
    "token_mode": {"type": "str", "choices": ["secret", "request"], "default": "secret"},
    "token_duration": {"type": "int", "default": 3600, "no_log": False},
    "token_timeout": {"type": "int", "default": 60},
    "server": {"type": "str"},
    "server_ca_file": {"type": "path"},
    "token_path": {"type": "path", "no_log": False},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def _spec(params: dict[str, Any]) -> sa.SaSpec:
    rules = params["rules"]
    if rules is None and not params["cluster_role"] and params["image_builder_rules"]:
        rules = sa.DEFAULT_RULES + sa.IMAGE_BUILDER_RULES
    return sa.SaSpec(
        namespace=params["namespace"],
        name=params["name"],
        rules=rules,
        cluster_role=params["cluster_role"],
        role_name=params["role_name"],
        binding_name=params["binding_name"],
        secret_name=params["secret_name"],
        token_mode=params["token_mode"],
        token_duration=params["token_duration"],
        token_timeout=params["token_timeout"],
        create_namespace=params["create_namespace"],
        labels=params["labels"],
    )


def _credentials(module: AnsibleModule, api_client: Any, creds: dict[str, Any]) -> dict[str, Any]:
    ca_pem = creds["ca_pem"]
    if module.params["server_ca_file"]:
        with open(module.params["server_ca_file"], encoding="utf-8") as handle:
            ca_pem = handle.read()
    return {
        "server": module.params["server"] or api_client.configuration.host,
        "ca_pem": ca_pem,
        "ca_data": base64.b64encode(ca_pem.encode()).decode() if ca_pem else "",
        "token": creds["token"],
        "token_expiration": creds["expiration"],
    }


def _keep_token(module: AnsibleModule, result: dict[str, Any]) -> bool:
    """Mask the token in every output; with token_path write it there. True when the file changed."""
    token = result.get("token") or ""
    path = module.params["token_path"]
    forms = sa.token_forms(token)
    if not path:
        forms.discard(token)  # returned usable in `token` (see the docs)
    module.no_log_values.update(forms)
    if not path or not token:
        return False
    changed = sa.write_token_file(path, token, module.check_mode)
    if not module.check_mode or not changed:
        result["token_path"] = path
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        mutually_exclusive=[("rules", "cluster_role")],
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    spec = _spec(module.params)
    try:
        sa.validate_spec(spec)
        api_client = build_api_client(KubeAuth.from_params(module.params))
    except (sa.ServiceAccountError, KubeAuthError) as exc:
        module.fail_json(msg=str(exc))
    rest = sa.KubeRest(api_client, dry_run=module.check_mode)
    result: dict[str, Any] = {"namespace": spec.namespace, "service_account": spec.name}
    try:
        if module.params["state"] == "absent":
            outcome = sa.ensure_absent(rest, spec)
        else:
            outcome, creds = sa.ensure_present(rest, spec)
            result.update(_credentials(module, api_client, creds))
            if _keep_token(module, result):
                outcome.changed = True
                outcome.actions.append(f"write the token to {module.params['token_path']}")
    except sa.ServiceAccountError as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg=f"server_ca_file or token_path: {exc}")
    except Exception as exc:  # ApiException and urllib3 errors: explain the likely cause
        module.fail_json(msg=api_error_message(exc, f"service account {spec.namespace}/{spec.name}"), **result)
    result.update(changed=outcome.changed, actions=outcome.actions)
    if module._diff:
        result["diff"] = {"before": {"objects": outcome.before}, "after": {"objects": outcome.after}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
