#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_apply
short_description: Apply rendered chart documents as a release, hooks included, without rotating secrets
version_added: "0.1.0"
description:
  - Applies the documents of a rendered chart (C(helm template) output, typically after M(airgap.renku.ca_inject))
    with server-side apply and one field manager. Re-applying unchanged documents writes nothing.
  - Runs Helm hooks (C(pre-install)/C(post-install) on the first run, C(pre-upgrade)/C(post-upgrade) afterwards) in
    Helm's order (weight, kind, name), honours C(helm.sh/hook-delete-policy) and waits for hook Jobs and Pods.
    Hooks run only when the rendered release differs from the last applied one.
  - Never re-applies a Secret that already exists (charts generating passwords or CAs with C(randAlphaNum) and
    C(lookup) would otherwise rotate them on every offline render), unless the Secret carries the annotation
    C(airgap.renku/always-apply=true), as the CA bundle objects of M(airgap.renku.ca_inject) do.
  - Labels every object with C(airgap.renku/release), keeps the release inventory in the ConfigMap
    C(airgap-release-<release>) and deletes objects an earlier run rendered and this one does not.
  - Test, delete and rollback hooks are not run.
  - The values of every Secret it is given or reads (C(data) as written and decoded, C(stringData)) are masked
    wherever they would appear in the result, the diff, an error or the invocation shown at C(-vvv) (Ansible's
    C(no_log_values)). Values of fewer than 6 characters, and values the release also writes into an object that
    is not a Secret (a host or user name), stay readable.
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.kube_auth
  - airgap.renku.requirements.pyyaml
attributes:
  check_mode:
    support: full
    description: Objects are sent with server-side dry run; hooks and pruning are reported, not run.
  diff_mode:
    support: full
    description: Before and after of every created or changed object; Secret values are masked.
options:
  release:
    description:
      - Name of the release; labels the objects and names the release record.
    type: str
    required: true
  namespace:
    description:
      - Namespace of documents that name none, and of the release record. Created when missing.
    type: str
    required: true
  documents:
    description:
      - The documents to apply. At least one of O(documents), O(src) and O(manifest) is required; O(src) and
        O(manifest) exclude each other, and either goes with O(documents) (the documents first, for example the
        bundle objects of M(airgap.renku.ca_inject), then those of the text).
      - A null value in labels, annotations, Secret C(data)/C(stringData) or ConfigMap C(data)/C(binaryData) is
        applied as an empty string, which is how Kubernetes reads it.
    type: list
    elements: dict
  src:
    description:
      - Path to a multi-document YAML file on the target host holding the documents, for example the
        O(airgap.renku.ca_inject#module:dest) of M(airgap.renku.ca_inject), which keeps a chart's generated
        passwords out of every output.
      - Read as Kubernetes reads YAML, so an unquoted C(=) or timestamp stays a string.
    type: path
  manifest:
    description:
      - The documents to apply as multi-document YAML text, for example the RV(airgap.renku.ca_inject#module:manifest)
        of M(airgap.renku.ca_inject) with O(airgap.renku.ca_inject#module:output=manifest). Passing text between tasks
        costs far less than passing a large list of documents.
      - Read as Kubernetes reads YAML, so an unquoted C(=) or timestamp stays a string; empty and comment-only
        documents are dropped; every other document must be a mapping.
    type: str
  field_manager:
    description:
      - Server-side apply field manager.
    type: str
    default: airgap-renku
  keep_existing_secrets:
    description:
      - Leave Secrets that already exist untouched (see the description). Turn off only for charts that never
        generate secret values.
    type: bool
    default: true
  prune:
    description:
      - Delete objects the previous run applied and this one does not render.
    type: bool
    default: true
  wait_hooks:
    description:
      - Wait for hook Jobs to complete and hook Pods to succeed before going on, as Helm does.
    type: bool
    default: true
  hook_timeout:
    description:
      - Seconds to wait for each hook (and for a deleted hook to disappear).
    type: int
    default: 300
  generated_fields:
    description:
      - Fields the chart generates at random, as the C(airgap.renku.generated_fields) filter finds them by comparing
        two renders with the same values; each item names one document (C(kind), C(namespace), C(name)) and lists
        C(paths) and, when its name is random, a C(name_pattern).
      - A random name is replaced by the name the release already uses (kept in the release record), and every other
        random field by the value the live object has, so a rerun with unchanged values changes nothing (Renku's setup
        Jobs are named C(<release>-init-...-<random>) and its UI pod template carries a random annotation).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Inject the CA into the rendered chart
  airgap.renku.ca_inject:
    manifest: "{{ rendered.stdout }}"
    ca_files: [/etc/pki/site/root-ca.crt]
    namespace: renku
  register: injected

- name: Apply the release (bundle objects first, hooks in order, existing secrets kept)
  airgap.renku.release_apply:
    kubeconfig: /etc/airgap/kubeconfig
    release: renku
    namespace: renku
    documents: "{{ injected.bundle + injected.documents }}"
  register: applied

- name: Inject the CA into the rendered text, keeping it text
  airgap.renku.ca_inject:
    manifest: "{{ rendered.stdout }}"
    output: manifest
    ca_files: [/etc/pki/site/root-ca.crt]
    namespace: renku
  register: injected_text

- name: Apply the bundle objects, then the documents of the manifest
  airgap.renku.release_apply:
    kubeconfig: /etc/airgap/kubeconfig
    release: renku
    namespace: renku
    documents: "{{ injected_text.bundle }}"
    manifest: "{{ injected_text.manifest }}"
"""

RETURN = r"""
phase:
  description: C(install) when no release record existed, else C(upgrade).
  returned: always
  type: str
  sample: upgrade
created:
  description: Objects created (C(apiVersion/kind/namespace/name)).
  returned: always
  type: list
  elements: str
  sample: ["apps/v1/Deployment/renku/renku-ui"]
updated:
  description: Objects whose live state changed.
  returned: always
  type: list
  elements: str
  sample: ["v1/ConfigMap/renku/renku-settings"]
kept_secrets:
  description: Secrets that existed and were left untouched.
  returned: always
  type: list
  elements: str
  sample: ["v1/Secret/renku/renku-ca"]
hooks_run:
  description: Hooks run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["batch/v1/Job/renku/renku-db-init"]
pruned:
  description: Objects deleted because the release no longer renders them.
  returned: always
  type: list
  elements: str
  sample: ["apps/v1/Deployment/renku/renku-old-service"]
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common import kube, kube_yaml, secrets
from ansible_collections.airgap.renku.plugins.module_utils.platform import release

ARGUMENT_SPEC: dict[str, Any] = {
    **kube.KUBE_AUTH_ARGSPEC,
    "release": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "documents": {"type": "list", "elements": "dict"},
    "src": {"type": "path"},
    "manifest": {"type": "str"},
    "field_manager": {"type": "str", "default": "airgap-renku"},
    "keep_existing_secrets": {"type": "bool", "default": True, "no_log": False},
    "prune": {"type": "bool", "default": True},
    "wait_hooks": {"type": "bool", "default": True},
    "hook_timeout": {"type": "int", "default": 300},
    "generated_fields": {"type": "list", "elements": "dict", "default": []},
}


def documents_to_apply(documents: list[dict] | None, manifest: str | None, name: str = "manifest") -> list[dict]:
    """`documents`, then the documents of the `manifest` text (read as Kubernetes reads YAML, empty ones dropped).

    Raises kube_yaml.KubeYAMLError, naming `name`, also for a manifest document that is not a mapping.
    """
    out = list(documents or [])
    if manifest is not None:
        for index, document in enumerate(kube_yaml.load_documents(manifest, name)):
            if not isinstance(document, dict):
                raise kube_yaml.KubeYAMLError(
                    f"{name}: document {index + 1} is a {type(document).__name__}, not a Kubernetes object"
                )
            out.append(document)
    return out


def _documents(module: AnsibleModule) -> list[dict]:
    """The documents to apply, read as Kubernetes reads them; empty documents dropped."""
    params = module.params
    text, name = params["manifest"], "manifest"
    if params["src"] is not None:
        name = f"src {params['src']}"
        try:
            with open(params["src"], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            module.fail_json(msg=f"{name}: cannot read it: {exc}")
    try:
        return documents_to_apply(params["documents"], text, name)
    except kube_yaml.KubeYAMLError as exc:
        module.fail_json(msg=f"cannot read the documents: {exc}")
    return []


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("manifest", "src")],
        required_one_of=[("documents", "src", "manifest")],
        supports_check_mode=True,
    )
    if not kube.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=kube.KUBERNETES_IMPORT_ERROR)
    if not kube_yaml.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=kube_yaml.YAML_IMPORT_ERROR)
    documents = _documents(module)
    # the Secrets' values are masked in every output: the invocation (at -vvv), the result, errors
    module.no_log_values.update(secrets.secret_values(documents))
    from kubernetes.dynamic import DynamicClient

    try:
        dynamic = DynamicClient(kube.build_api_client(kube.KubeAuth.from_params(module.params)))
    except kube.KubeAuthError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # discovery failures surface as several urllib3/ApiException types
        module.fail_json(msg=kube.api_error_message(exc, "cannot reach the API server"))
    applier = release.ReleaseApplier(
        dynamic,
        module.params["release"],
        module.params["namespace"],
        module.params["field_manager"],
        check=module.check_mode,
        want_diff=module._diff,
        hook_timeout=module.params["hook_timeout"],
        wait_hooks=module.params["wait_hooks"],
        keep_existing_secrets=module.params["keep_existing_secrets"],
        prune=module.params["prune"],
    )
    try:
        outcome = applier.run(documents, module.params["generated_fields"])
    except release.ReleaseError as exc:
        module.no_log_values.update(applier.secret_values)
        module.fail_json(msg=str(exc), **applier.outcome.as_dict())
    module.no_log_values.update(applier.secret_values)
    result: dict[str, Any] = outcome.as_dict()
    if module._diff:
        result["diff"] = outcome.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
