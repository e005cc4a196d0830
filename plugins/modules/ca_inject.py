#!/usr/bin/python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ca_inject
short_description: Make every container of a set of Kubernetes documents trust a private root CA
version_added: "0.1.0"
description:
  - A pure transform over Kubernetes documents; it never talks to a cluster.
  - Validates each CA first (the PEM parses, is a CA by C(basicConstraints), may sign certificates by
    C(keyUsage), is within its validity period) and fails naming the input when one is not; warns when a
    CA expires within O(warn_days).
  - Builds a full bundle (the controller's system roots plus the custom CAs, because several variables
    replace the default store) and emits a ConfigMap and a Secret carrying it in every namespace involved.
  - Patches every pod template of every kind that has one (Pod, Deployment, StatefulSet, DaemonSet,
    ReplicaSet, Job, CronJob, Helm hooks, and the CRD paths in O(pod_spec_paths)), init containers and
    containers, per runtime. Java gets an init container that copies the image's own C(cacerts), imports
    the CAs with C(keytool) into an emptyDir, and C(JAVA_TOOL_OPTIONS) pointing at it, so no image is rebuilt.
  - Existing variables are kept unless O(overwrite=true), except a literal path no volume of the container
    provides (a file of the image, which cannot hold the private CA). That one is replaced and reported under
    C(replaced). Running the module on its own output returns the
    same documents.
  - For images where none of that works, O(image_builds) returns a Dockerfile running C(update-ca-certificates)
    and the kaniko Job that builds it.
  - With O(output=manifest) the module works on YAML text end to end. It reads only the documents it may change
    (the kinds holding pod templates, those of O(pod_spec_paths), ConfigMaps and Secrets, and any document whose
    kind a line scan cannot tell) and returns every other one as its original text in RV(manifest). On a real
    chart render that is a fraction of the documents and bytes (Renku's 440 KB session CRD is never read).
author:
  - airgap.renku maintainers (@airgap-renku)
extends_documentation_fragment:
  - airgap.renku.attributes.read_only
  - airgap.renku.requirements.cryptography
  - airgap.renku.requirements.pyyaml
  - airgap.renku.manifest_dest
attributes:
  diff_mode:
    support: none
    description: Nothing is changed on the target; the RV(report) says what was injected where.
options:
  documents:
    description:
      - Kubernetes documents to transform (for example the parsed output of C(helm template)).
      - Exactly one of O(documents), O(src) and O(manifest) is required; O(output=manifest) needs O(src) or
        O(manifest).
      - Null and empty documents are dropped; a null list or map inside a document counts as empty, as in Kubernetes.
    type: list
    elements: raw
  src:
    description:
      - Path to a multi-document YAML file on the controller to transform.
      - Read as Kubernetes reads YAML, so an unquoted C(=) or timestamp stays a string.
    type: path
  manifest:
    description:
      - Multi-document YAML text to transform, for example the standard output of C(helm template).
      - Read as Kubernetes reads YAML, so an unquoted C(=) or timestamp stays a string.
    type: str
  output:
    description:
      - V(documents) returns the transformed documents as a list in RV(documents).
      - V(manifest) returns them as multi-document YAML text in RV(manifest) and leaves RV(documents) empty. Each
        document the transform does not change keeps its original text (comments and formatting included); each
        changed one is written anew after its leading comments. Documents the transform never reads are not
        checked for YAML errors here; they surface where the manifest is read next (M(airgap.renku.release_apply),
        or Helm).
      - Text is what C(helm template) prints and M(airgap.renku.release_apply) reads, and it passes between tasks
        far cheaper than a large list of documents.
    type: str
    choices: [documents, manifest]
    default: documents
  ca_files:
    description:
      - Files holding the custom CA certificates in PEM (a file may hold several).
      - At least one of O(ca_files) and O(ca_pems) is required.
    type: list
    elements: path
    default: []
  ca_pems:
    description:
      - Custom CA certificates as PEM text.
    type: list
    elements: str
    default: []
  warn_days:
    description:
      - Warn when a CA expires within this many days.
    type: int
    default: 30
  include_system_roots:
    description:
      - Put the system roots in the bundle before the custom CAs. Turn off only for sites whose pods must
        trust nothing but the private CA.
    type: bool
    default: true
  system_bundle:
    description:
      - PEM bundle of system roots on the controller. Default is C(certifi) when installed, else the
        distribution bundle (C(/etc/ssl/certs/ca-certificates.crt) and the like).
    type: path
  bundle_name:
    description:
      - Name of the ConfigMap and Secret carrying the bundle, and of the pod volume mounting it.
    type: str
    default: airgap-ca-bundle
  namespace:
    description:
      - Namespace of documents that name none (what C(helm template --namespace) leaves out).
    type: str
    default: default
  extra_namespaces:
    description:
      - Namespaces that get the bundle objects although no document is in them (for example Renku session
        namespaces).
    type: list
    elements: str
    default: []
  runtimes:
    description:
      - Runtimes every selected container is configured for when no O(selectors) entry matches it.
      - V(python) sets C(REQUESTS_CA_BUNDLE); V(openssl) sets C(SSL_CERT_FILE) and C(CURL_CA_BUNDLE); V(go) sets
        C(SSL_CERT_FILE); V(git) sets C(GIT_SSL_CAINFO); V(node) sets C(NODE_EXTRA_CA_CERTS) (custom CAs only, Node
        adds them to its own roots); V(grpc) sets C(GRPC_DEFAULT_SSL_ROOTS_FILE_PATH); V(pip) sets C(PIP_CERT);
        V(aws) sets C(AWS_CA_BUNDLE); V(java) adds the trust store init container and C(JAVA_TOOL_OPTIONS).
    type: list
    elements: str
    choices: [python, openssl, go, git, node, grpc, pip, aws, java]
    default: [python, openssl, go, git, node, grpc, pip, aws]
  java_images:
    description:
      - Regular expressions on the image reference; a matching container also gets V(java) unless a selector
        decides otherwise. The default matches Temurin, OpenJDK, Corretto, Keycloak and other common JVM images.
    type: list
    elements: str
  selectors:
    description:
      - Rules choosing runtimes per container; the first rule whose every given field matches (regular
        expression search) decides. Containers no rule matches get O(runtimes) (plus V(java) by O(java_images)).
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Regular expression on the document kind.
        type: str
      workload:
        description: Regular expression on the document name.
        type: str
      namespace:
        description: Regular expression on the document namespace.
        type: str
      container:
        description: Regular expression on the container name.
        type: str
      image:
        description: Regular expression on the container image.
        type: str
      runtimes:
        description: Runtimes of the matching containers (empty means none).
        type: list
        elements: str
        choices: [python, openssl, go, git, node, grpc, pip, aws, java]
        default: []
      exclude:
        description: Leave the matching containers untouched.
        type: bool
        default: false
  overwrite:
    description:
      - Replace variables a container already sets. By default an existing value is kept and reported, unless it
        names a file of the image itself (no volume mount provides it), which is replaced.
    type: bool
    default: false
  pod_spec_paths:
    description:
      - Extra places holding pod specs in custom resources, as C(Kind:dotted.path.to.podspec).
    type: list
    elements: str
    default: []
  emit_bundle:
    description:
      - Return the bundle ConfigMaps and Secrets in RV(bundle). Off when they are created separately (the Helm
        post-renderer path).
    type: bool
    default: true
  emit_secret:
    description:
      - Also emit the Secret twin of each bundle ConfigMap, for consumers that only read Secrets.
    type: bool
    default: true
  java_truststore_password:
    description:
      - Password of the generated Java trust store. It protects integrity only; the store holds public
        certificates.
    type: str
    default: changeit
  image_builds:
    description:
      - Third-party images that ignore every variable; for each, a Dockerfile that adds the CA with
        C(update-ca-certificates) and a kaniko Job that builds and pushes it.
    type: list
    elements: dict
    default: []
    suboptions:
      image:
        description: The image to extend.
        type: str
        required: true
      target:
        description: Where the built image is pushed.
        type: str
        required: true
      user:
        description: User to switch back to after the CA is added (the image's own user).
        type: str
  kaniko_image:
    description:
      - The kaniko executor image, from the internal registry. Required with O(image_builds).
    type: str
  build_namespace:
    description:
      - Namespace of the kaniko Jobs.
    type: str
    default: default
  registry_secret:
    description:
      - Name of the C(kubernetes.io/dockerconfigjson) Secret the kaniko Jobs push with.
    type: str
    default: registry-push
seealso:
  - name: Renku custom CA values
    description: How the Renku chart consumes C(global.certificates.customCAs).
    link: https://github.com/SwissDataScienceCenter/renku
"""

EXAMPLES = r"""
- name: Render the chart
  ansible.builtin.command:
    argv: [helm, template, renku, ./renku, --namespace, renku]
  register: rendered
  changed_when: false

- name: Make every workload, hooks included, trust the site CA
  airgap.renku.ca_inject:
    manifest: "{{ rendered.stdout }}"
    ca_files: [/etc/pki/site/root-ca.crt]
    namespace: renku
    extra_namespaces: [renku-sessions]
    selectors:
      - image: "(^|/)postgres[:@]"
        exclude: true
      - workload: "^Deployment/renku/renku-ui-server$"
        runtimes: [node]
  register: injected

- name: The same on YAML text, read only where it is patched, for the apply
  airgap.renku.ca_inject:
    manifest: "{{ rendered.stdout }}"
    output: manifest
    ca_files: [/etc/pki/site/root-ca.crt]
    namespace: renku
  register: injected_text

- name: Apply the bundle objects and the patched manifest
  airgap.renku.release_apply:
    kubeconfig: /etc/airgap/kubeconfig
    release: renku
    namespace: renku
    documents: "{{ injected_text.bundle }}"
    manifest: "{{ injected_text.manifest }}"

- name: Show what each workload received
  ansible.builtin.debug:
    msg: "{{ injected.report | map(attribute='workload') | list }}"

- name: Bake the CA into an image that reads no variable
  airgap.renku.ca_inject:
    documents: []
    ca_files: [/etc/pki/site/root-ca.crt]
    kaniko_image: registry.site.internal/kaniko-project/executor:v1.23.2
    image_builds:
      - image: registry.site.internal/jupyterhub/k8s-hub:4.0.0
        target: registry.site.internal/site/k8s-hub:4.0.0-ca
        user: jovyan
  register: builds
"""

RETURN = r"""
documents:
  description:
    - The transformed documents, in input order (bundle objects from an earlier pass left out).
    - Empty with O(output=manifest).
  returned: always
  type: list
  elements: dict
  sample: [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}}]
manifest:
  description:
    - The transformed documents as multi-document YAML text, in input order (bundle objects from an earlier pass
      and comment-only documents left out); the bundle objects are in RV(bundle), not here.
  returned: when O(output=manifest) and O(dest) is not set
  type: str
  sample: "---\n# Source: renku/templates/ui/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n..."
bundle:
  description: The ConfigMap and Secret carrying the bundle, one pair per namespace; apply them first.
  returned: always
  type: list
  elements: dict
  sample: [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "airgap-ca-bundle", "namespace": "renku"}}]
report:
  description:
    - Per pod template, what each container received (C(set)), which existing values were kept (C(kept)) and which
      existing values naming a file of the image were replaced (C(replaced), also listed in C(set)).
  returned: always
  type: list
  elements: dict
  sample:
    - workload: Job/renku/renku-db-init
      kind: Job
      namespace: renku
      path: spec.template.spec
      hook: pre-install
      changed: true
      containers:
        - {name: init, list: containers, runtimes: [python], set: [REQUESTS_CA_BUNDLE], kept: [], replaced: []}
cas:
  description: The accepted CAs.
  returned: always
  type: list
  elements: dict
  sample: [{"source": "ca_files[0] (/etc/pki/site/root-ca.crt)", "subject": "CN=Site Root CA",
            "sha256": "4f1c...", "not_after": "2035-01-01T00:00:00+00:00"}]
custom_bundle:
  description: The custom CAs only, as PEM (what Renku's C(global.certificates.customCAs) Secret holds).
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
namespaces:
  description: Namespaces that received bundle objects.
  returned: always
  type: list
  elements: str
  sample: [renku, renku-sessions]
digest:
  description:
    - SHA-256 of the output (documents and bundle), Secret values left out because charts regenerate them on
      every render; changes only when what would be applied changes.
    - With O(output=manifest) it is taken over the bundle and the text of RV(manifest) (each Secret by its
      content without values), so it is the same for identical runs but differs from the O(output=documents)
      digest of the same input; it also changes when a comment in the input changes.
  returned: always
  type: str
  sample: 0f6c3b5a9e...
modified:
  description: Whether the transform altered any document (false on its own output).
  returned: always
  type: bool
  sample: true
builds:
  description: For each O(image_builds) entry, the Dockerfile and the objects (context ConfigMap, kaniko Job).
  returned: always
  type: list
  elements: dict
  sample: [{"image": "k8s-hub:4.0.0", "target": "site/k8s-hub:4.0.0-ca", "dockerfile": "FROM ...", "objects": []}]
dest:
  description: The file the transformed documents were written to (O(output=manifest) with O(dest)).
  returned: when O(dest) is set
  type: str
  sample: /run/deploy/injected.yaml
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml
from ansible_collections.airgap.renku.plugins.module_utils.common.secrets import (
    MANIFEST_DEST_ARGSPEC,
    deliver_manifest,
    mask_input_secrets,
)
from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject, kaniko, release

RUNTIME_CHOICES = list(inject.ALL_RUNTIMES)

ARGUMENT_SPEC: dict[str, Any] = {
    "documents": {"type": "list", "elements": "raw"},
    "src": {"type": "path"},
    "manifest": {"type": "str"},
    "output": {"type": "str", "choices": ["documents", "manifest"], "default": "documents"},
    "ca_files": {"type": "list", "elements": "path", "default": []},
    "ca_pems": {"type": "list", "elements": "str", "default": []},
    "warn_days": {"type": "int", "default": 30},
    "include_system_roots": {"type": "bool", "default": True},
    "system_bundle": {"type": "path"},
    "bundle_name": {"type": "str", "default": "airgap-ca-bundle"},
    "namespace": {"type": "str", "default": "default"},
    "extra_namespaces": {"type": "list", "elements": "str", "default": []},
    "runtimes": {
        "type": "list",
        "elements": "str",
        "choices": RUNTIME_CHOICES,
        "default": list(inject.DEFAULT_RUNTIMES),
    },
    "java_images": {"type": "list", "elements": "str"},
    "selectors": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "kind": {"type": "str"},
            "workload": {"type": "str"},
            "namespace": {"type": "str"},
            "container": {"type": "str"},
            "image": {"type": "str"},
            "runtimes": {"type": "list", "elements": "str", "choices": RUNTIME_CHOICES, "default": []},
            "exclude": {"type": "bool", "default": False},
        },
    },
    "overwrite": {"type": "bool", "default": False},
    "pod_spec_paths": {"type": "list", "elements": "str", "default": []},
    "emit_bundle": {"type": "bool", "default": True},
    "emit_secret": {"type": "bool", "default": True},
    "java_truststore_password": {"type": "str", "default": "changeit", "no_log": False},
    "image_builds": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "image": {"type": "str", "required": True},
            "target": {"type": "str", "required": True},
            "user": {"type": "str"},
        },
    },
    "kaniko_image": {"type": "str"},
    "build_namespace": {"type": "str", "default": "default"},
    "registry_secret": {"type": "str", "default": "registry-push", "no_log": False},
    **MANIFEST_DEST_ARGSPEC,
}


def _ca_inputs(module: AnsibleModule) -> list[tuple[str, str]]:
    inputs = []
    for index, path in enumerate(module.params["ca_files"]):
        source = f"ca_files[{index}] ({path})"
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                inputs.append((source, handle.read()))
        except OSError as exc:
            module.fail_json(msg=f"{source}: cannot read the CA file: {exc.strerror}")
    inputs.extend((f"ca_pems[{index}]", pem) for index, pem in enumerate(module.params["ca_pems"]))
    return inputs


def _documents(module: AnsibleModule) -> list[Any]:
    """The input documents, read as Kubernetes reads them; empty documents dropped."""
    params = module.params
    if params["documents"] is not None:
        return [d for d in params["documents"] if not kube_yaml.is_empty(d)]
    try:
        if params["src"] is not None:
            with open(params["src"], encoding="utf-8") as handle:
                return kube_yaml.load_documents(handle, params["src"])
        return kube_yaml.load_documents(params["manifest"], "manifest")
    except (OSError, kube_yaml.KubeYAMLError) as exc:
        module.fail_json(msg=f"cannot read the documents: {exc}")
    return []


def _manifest_text(module: AnsibleModule) -> tuple[str, str]:
    """(text, name) of the input for `output: manifest`."""
    params = module.params
    if params["manifest"] is not None:
        return params["manifest"], "manifest"
    if params["src"] is None:
        module.fail_json(msg="output=manifest needs the input as text: give 'manifest' or 'src', not 'documents'")
    try:
        with open(params["src"], encoding="utf-8") as handle:
            return handle.read(), params["src"]
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg=f"cannot read the documents: {params['src']}: {exc}")
    return "", ""


def _transform(
    module: AnsibleModule, cas: list[ca.CAInfo], options: inject.InjectOptions
) -> tuple[dict[str, Any], str]:
    """The transform of the input per `output`, and the digest of its result."""
    if module.params["output"] == "documents":
        result = inject.inject(_documents(module), cas, _system_roots(module), options)
        return result, release.release_digest(result["bundle"] + result["documents"])
    text, name = _manifest_text(module)
    system = _system_roots(module)
    try:
        result = inject.inject_manifest(text, cas, system, options, name)
    except kube_yaml.KubeYAMLError as exc:
        module.fail_json(msg=f"cannot read the documents: {exc}")
    return result, inject.manifest_digest(result["bundle"], result.pop("parts"))


def _manifest_result(module: AnsibleModule, result: dict[str, Any]) -> dict[str, Any]:
    """The manifest text, or with `dest` the file it went to (its Secret values masked in all output)."""
    if "manifest" not in result:
        return {}
    dest = module.params["dest"]
    try:
        return deliver_manifest(result["manifest"], dest, module.no_log_values)
    except kube_yaml.KubeYAMLError as exc:
        module.fail_json(msg=f"cannot read the transformed documents: {exc}")
    except OSError as exc:
        module.fail_json(msg=f"dest {dest}: cannot write it: {exc}")
    return {}


def _system_roots(module: AnsibleModule) -> str:
    if not module.params["include_system_roots"]:
        return ""
    path = module.params["system_bundle"] or ca.default_system_bundle()
    if not path:
        module.fail_json(msg="no system roots found on the controller; set 'system_bundle' to a PEM bundle")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        module.fail_json(msg=f"system_bundle {path}: cannot read it: {exc.strerror}")
    return ""


def _options(module: AnsibleModule) -> inject.InjectOptions:
    try:
        return inject.options_from(module.params)
    except ValueError as exc:
        module.fail_json(msg=f"pod_spec_paths: {exc}")
    raise AssertionError("unreachable")  # fail_json exits


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("documents", "src", "manifest")],
        required_one_of=[("documents", "src", "manifest"), ("ca_files", "ca_pems")],
        supports_check_mode=True,
    )
    if not ca.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=ca.CRYPTOGRAPHY_IMPORT_ERROR)
    if not kube_yaml.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=kube_yaml.YAML_IMPORT_ERROR)
    mask_input_secrets(module.params["manifest"], module.params["dest"], module.no_log_values)
    if module.params["dest"] and module.params["output"] != "manifest":
        module.fail_json(msg="dest needs output=manifest (the documents are written as multi-document YAML)")
    if module.params["image_builds"] and not module.params["kaniko_image"]:
        module.fail_json(msg="image_builds needs 'kaniko_image' (the kaniko executor in the internal registry)")
    try:
        cas, warnings = ca.validate_cas(_ca_inputs(module), module.params["warn_days"])
    except ca.CAError as exc:
        module.fail_json(msg=f"CA refused, nothing was transformed: {exc}")
    for warning in warnings:
        module.warn(warning)
    options = _options(module)
    result, digest = _transform(module, cas, options)
    custom = ca.build_bundle(cas, "")[1]
    builds = [
        kaniko.ca_image_build(
            b["image"],
            b["target"],
            custom,
            module.params["kaniko_image"],
            module.params["build_namespace"],
            module.params["registry_secret"],
            options.bundle_name,
            b.get("user"),
        )
        for b in module.params["image_builds"]
    ]
    extra = _manifest_result(module, result)
    module.exit_json(
        changed=False,
        documents=result["documents"],
        bundle=result["bundle"],
        report=result["report"],
        modified=result["modified"],
        digest=digest,
        namespaces=result["namespaces"],
        cas=[accepted.as_dict() for accepted in cas],
        custom_bundle=custom,
        builds=builds,
        **extra,
    )


if __name__ == "__main__":
    main()
