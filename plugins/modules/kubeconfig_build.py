#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kubeconfig_build
short_description: Build a service-account kubeconfig, write it safely and check what it may do
version_added: 0.1.0
description:
  - Builds a kubeconfig with one cluster, one user (bearer token or client certificate), one context
    that names the namespace, and C(current-context) always set.
  - Writes it atomically with mode C(0600) when O(path) is set, returns it when O(return_content=true),
    and returns it as a single-line base64 string (for a masked CI variable) when O(return_base64=true).
  - With O(verify=true) it calls the API server with the kubeconfig and reports, through
    SelfSubjectAccessReview and SelfSubjectRulesReview, what the identity may and may not do.
  - Every form of the credential (the token, the client key, and the kubeconfig's base64 form) is masked wherever
    it would appear in the result, the diff or an error (Ansible's C(no_log_values)). The one exception is
    RV(kubeconfig_base64), returned usable because O(return_base64=true) asks for it; run that task with
    C(no_log). To pass a working kubeconfig on without any task holding it, use O(path) or O(base64_path).
author:
  - airgap.renku maintainers (@airgap-renku)
attributes:
  check_mode:
    support: full
    description: Nothing is written; O(verify) still runs, it only reads.
  diff_mode:
    support: full
    description: Diff of the kubeconfig file with the token and client key masked.
options:
  server:
    description:
      - API server URL (https).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the context; clients that take the namespace from C(current-context) use it.
    type: str
    required: true
  ca_data:
    description:
      - CA that signs the API server certificate, as PEM text or base64 of PEM (C(certificate-authority-data)).
      - Mutually exclusive with O(ca_file).
    type: str
  ca_file:
    description:
      - PEM file of the CA; its content is embedded in the kubeconfig.
    type: path
  token:
    description:
      - Bearer token of the user. Exactly one of O(token), O(token_file) and O(client_cert_data) is required.
    type: str
  token_file:
    description:
      - File holding the bearer token of the user, for example written by
        M(airgap.renku.remote_cluster_sa) with O(airgap.renku.remote_cluster_sa#module:token_path).
      - Surrounding whitespace is ignored; the token is masked in every output.
    type: path
  client_cert_data:
    description:
      - Client certificate of the user, PEM text or base64 of PEM.
    type: str
  client_key_data:
    description:
      - Key of O(client_cert_data), PEM text or base64 of PEM.
    type: str
  cluster_name:
    description:
      - Name of the cluster entry.
    type: str
    default: cluster
  user_name:
    description:
      - Name of the user entry.
    type: str
    default: user
  context_name:
    description:
      - Name of the context entry; also C(current-context).
    type: str
    default: default
  path:
    description:
      - Write the kubeconfig here (atomically, mode C(0600)). Nothing is written when omitted.
    type: path
  base64_path:
    description:
      - Write the kubeconfig as one line of base64 (the form a masked GitLab CI variable wants) to this file,
        atomically with mode C(0600).
    type: path
  return_content:
    description:
      - Return the kubeconfig as YAML text in RV(kubeconfig).
      - Ansible masks the value of O(token) wherever it appears in a result, so the token in this text reads
        C(********); use O(path) or O(base64_path) (or RV(kubeconfig_base64)) to pass the working kubeconfig on.
    type: bool
    default: false
  return_base64:
    description:
      - Return the kubeconfig as one line of base64 in RV(kubeconfig_base64), usable (not masked), so run the
        task with C(no_log) and never loop over its registered result. Prefer O(base64_path).
    type: bool
    default: false
  verify:
    description:
      - Call the API server with the kubeconfig and report what it may and may not do.
    type: bool
    default: false
  verify_checks:
    description:
      - Access checks for O(verify); by default listing pods, creating deployments and reading secrets in
        O(namespace) and in C(kube-system), and listing namespaces.
    type: list
    elements: dict
    suboptions:
      verb:
        description: API verb, for example V(create).
        type: str
        required: true
      resource:
        description: Resource (plural), for example V(deployments).
        type: str
        required: true
      group:
        description: API group; empty for the core group.
        type: str
        default: ""
      subresource:
        description: Subresource, for example V(log).
        type: str
        default: ""
      name:
        description: Object name.
        type: str
        default: ""
      namespace:
        description: Namespace; empty for cluster scope.
        type: str
        default: ""
      expect:
        description: Fail unless the verdict is this.
        type: str
        choices: [allowed, denied]
  timeout:
    description:
      - Seconds per API request made by O(verify).
    type: int
    default: 15
requirements:
  - kubernetes >= 29.0.0 (Python), for O(verify)
  - PyYAML
"""

EXAMPLES = r"""
- name: Kubeconfig for the Renku data-service from remote_cluster_sa's result
  airgap.renku.kubeconfig_build:
    server: "{{ remote_sa.server }}"
    ca_data: "{{ remote_sa.ca_data }}"
    token: "{{ remote_sa.token }}"
    namespace: "{{ remote_sa.namespace }}"
    cluster_name: remote-a
    user_name: renku-data-service
    context_name: remote-a
    path: /srv/renku/remote-a.yaml
  no_log: true

- name: Base64 one-liner for a masked GitLab CI variable, proved to work in its namespace only
  airgap.renku.kubeconfig_build:
    server: https://k8s.example.internal:6443
    ca_file: /etc/pki/site-root-ca.pem
    token: "{{ deployer.token }}"
    namespace: team-a
    return_base64: true
    verify: true
    verify_checks:
      - {verb: create, resource: deployments, group: apps, namespace: team-a, expect: allowed}
      - {verb: list, resource: pods, namespace: kube-system, expect: denied}
  register: deployer_kubeconfig
  no_log: true
"""

RETURN = r"""
path:
  description: Where the kubeconfig was written.
  returned: when O(path) is set
  type: str
  sample: /srv/renku/remote-a.yaml
base64_path:
  description: Where the base64 one-liner was written.
  returned: when O(base64_path) is set
  type: str
  sample: /srv/deployers/team-a.kubeconfig.b64
kubeconfig:
  description: The kubeconfig YAML; the credential in it reads C(********).
  returned: when O(return_content=true)
  type: str
  sample: "apiVersion: v1\nkind: Config\n..."
kubeconfig_base64:
  description: The kubeconfig as one line of base64, usable (contains the credential).
  returned: when O(return_base64=true)
  type: str
  sample: YXBpVmVyc2lvbjogdjEK...
current_context:
  description: The context set as C(current-context).
  returned: always
  type: str
  sample: remote-a
access:
  description: Result of O(verify).
  returned: when O(verify=true)
  type: dict
  contains:
    allowed:
      description: Checks the API server allowed.
      type: list
      elements: str
      sample: ["create deployments.apps in team-a"]
    denied:
      description: Checks the API server denied.
      type: list
      elements: str
      sample: ["list pods in kube-system"]
    unexpected:
      description: Checks whose verdict differs from their C(expect) (the module fails when any).
      type: list
      elements: str
      sample: []
    rules:
      description: Resource rules of the identity in O(namespace) (SelfSubjectRulesReview).
      type: list
      elements: str
      sample: ["*,create,... deployments.apps"]
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common.files import write_atomic
from ansible_collections.airgap.renku.plugins.module_utils.common.kube import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    api_error_message,
)
from ansible_collections.airgap.renku.plugins.module_utils.deploy import kubeconfig as kc
from ansible_collections.airgap.renku.plugins.module_utils.remote.service_account import rest_json

CHECK_SPEC: dict[str, dict[str, Any]] = {
    "verb": {"type": "str", "required": True},
    "resource": {"type": "str", "required": True},
    "group": {"type": "str", "default": ""},
    "subresource": {"type": "str", "default": ""},
    "name": {"type": "str", "default": ""},
    "namespace": {"type": "str", "default": ""},
    "expect": {"type": "str", "choices": ["allowed", "denied"]},
}

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "server": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "ca_data": {"type": "str"},
    "ca_file": {"type": "path"},
    "token": {"type": "str", "no_log": True},
    "token_file": {"type": "path", "no_log": False},
    "client_cert_data": {"type": "str"},
    "client_key_data": {"type": "str", "no_log": True},
    "cluster_name": {"type": "str", "default": "cluster"},
    "user_name": {"type": "str", "default": "user"},
    "context_name": {"type": "str", "default": "default"},
    "path": {"type": "path"},
    "base64_path": {"type": "path"},
    "return_content": {"type": "bool", "default": False},
    "return_base64": {"type": "bool", "default": False},
    "verify": {"type": "bool", "default": False},
    "verify_checks": {"type": "list", "elements": "dict", "options": CHECK_SPEC},
    "timeout": {"type": "int", "default": 15},
}


def _token(module: AnsibleModule) -> str:
    """The token from O(token) or O(token_file); a token read from a file is masked from here on."""
    p = module.params
    if not p["token_file"]:
        return p["token"] or ""
    try:
        with open(p["token_file"], encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        module.fail_json(msg=f"token_file: cannot read {p['token_file']}: {exc}")
    if token:
        module.no_log_values.add(token)
    return token


def _spec(module: AnsibleModule) -> kc.KubeconfigSpec:
    p = module.params
    ca_data = p["ca_data"] or ""
    if p["ca_file"]:
        try:
            with open(p["ca_file"], encoding="utf-8") as handle:
                ca_data = handle.read()
        except OSError as exc:
            module.fail_json(msg=f"ca_file: cannot read {p['ca_file']}: {exc}")
    return kc.KubeconfigSpec(
        server=p["server"],
        namespace=p["namespace"],
        cluster_name=p["cluster_name"],
        user_name=p["user_name"],
        context_name=p["context_name"],
        ca_data=ca_data,
        token=_token(module),
        client_cert_data=p["client_cert_data"] or "",
        client_key_data=p["client_key_data"] or "",
    )


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _mask_credentials(module: AnsibleModule, config: dict[str, Any], text: str) -> None:
    """Every form of the credential is masked in the result, except the base64 the caller asked to get back."""
    values = kc.secret_values(config, text)
    if module.params["return_base64"]:
        values.discard(kc.one_line_base64(text))
    module.no_log_values.update(values)


def _write(module: AnsibleModule, path: str, text: str) -> bool:
    """Atomic replace with mode 0600; True when content or mode changed."""
    current = _read(path)
    changed = current != text
    if changed and not module.check_mode:
        write_atomic(path, text, mode=0o600)
    file_args = module.load_file_common_arguments({"path": path, "mode": "0600"})
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    return changed


def _diff(before_text: str | None, after: dict[str, Any]) -> dict[str, Any]:
    before = kc.parse(before_text) if before_text else None
    after_view = kc.masked(after)
    if before is not None and before != after and kc.masked(before) == after_view:
        after_view = {**after_view, "note": "credential changed (masked)"}
    return {"before": kc.masked(before) or {}, "after": after_view}


def _verify(module: AnsibleModule, config: dict[str, Any]) -> dict[str, Any]:
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config_from_dict(config, client_configuration=configuration)
    api_client = k8s_client.ApiClient(configuration)
    namespace = module.params["namespace"]
    checks = module.params["verify_checks"] or kc.default_checks(namespace)
    try:
        return kc.verify(api_client, namespace, checks, rest_json)
    except Exception as exc:  # ApiException and urllib3 errors: explain the likely cause
        module.fail_json(msg=api_error_message(exc, f"verify kubeconfig against {module.params['server']}"))
    raise AssertionError("unreachable")


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        mutually_exclusive=[("ca_data", "ca_file"), ("token", "token_file", "client_cert_data")],
        required_one_of=[("token", "token_file", "client_cert_data")],
        required_together=[("client_cert_data", "client_key_data")],
        add_file_common_args=False,
    )
    if not kc.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=kc.YAML_IMPORT_ERROR)
    try:
        config = kc.build(_spec(module))
    except kc.KubeconfigError as exc:
        module.fail_json(msg=str(exc))
    text = kc.render(config)
    _mask_credentials(module, config, text)
    result: dict[str, Any] = {"changed": False, "current_context": config["current-context"]}
    path = module.params["path"]
    if path:
        before_text = _read(path)
        result["changed"] = _write(module, path, text)
        result["path"] = path
        if module._diff:
            result["diff"] = _diff(before_text, config)
    if module.params["base64_path"]:
        changed = _write(module, module.params["base64_path"], kc.one_line_base64(text) + "\n")
        result["changed"] = result["changed"] or changed
        result["base64_path"] = module.params["base64_path"]
    if module.params["return_content"]:
        result["kubeconfig"] = text
    if module.params["return_base64"]:
        result["kubeconfig_base64"] = kc.one_line_base64(text)
    if module.params["verify"]:
        result["access"] = _verify(module, config)
        if result["access"]["unexpected"]:
            module.fail_json(
                msg="kubeconfig access differs from what was expected: " + "; ".join(result["access"]["unexpected"]),
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
