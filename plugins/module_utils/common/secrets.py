# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every secret a module handles, for it to add to `no_log_values`: Secret values among rendered documents, and
the forms a password takes in URLs, HTTP Basic headers and registry auth files (`credential_forms`).

Every module that reads or writes Kubernetes Secrets (the release transforms and the release apply) masks their
values this way, so Ansible hides them wherever they appear: results, diffs, warnings, errors and the invocation.
"""

from __future__ import annotations

import base64
from typing import Any, Iterator
from urllib.parse import quote

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml, manifest_stream
from ansible_collections.airgap.renku.plugins.module_utils.common.files import write_atomic
from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import CONFIG_VALUE_FIELDS, config_values

# Shorter Secret values are left readable: masking them would garble every word they occur in ("true", "80").
MIN_MASKED_LENGTH = 6


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def public_strings(documents: list[dict]) -> set[str]:
    """Every string the documents that are not Secrets hold: values a release writes in the open."""
    return {text for d in documents if isinstance(d, dict) and d.get("kind") != "Secret" for text in _strings(d)}


def secret_values(documents: list[dict], public: set[str] | None = None) -> set[str]:
    """The values of the Secrets among `documents`, as written and decoded, for masking in every output.

    A value the release also writes into an object that is not a Secret (a host or user name; `public`, by default
    the public strings of `documents`) stays readable, and so does a value shorter than MIN_MASKED_LENGTH.
    """
    if public is None:
        public = public_strings(documents)
    secrets = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Secret"]
    values: set[str] = set()
    for secret in secrets:
        values.update(v for v in (secret.get("data") or {}).values() if isinstance(v, str))
        values.update(value.text for value in config_values(secret))
    return {v for v in values if len(v.strip()) >= MIN_MASKED_LENGTH and v not in public}


def manifest_secret_values(text: str, name: str = "manifest") -> set[str]:
    """`secret_values` of multi-document YAML text, reading only the Secrets and the ConfigMaps beside them.

    The ConfigMaps give the strings a release writes in the open (host and user names), so they stay readable; the
    other documents (CRDs, RBAC, workloads) are not parsed. Raises kube_yaml.KubeYAMLError on unreadable YAML.
    """
    parts = manifest_stream.read(text, set(CONFIG_VALUE_FIELDS), name)
    return secret_values([part.document for part in parts if part.parsed and isinstance(part.document, dict)])


# doc fragment airgap.renku.manifest_dest
MANIFEST_DEST_ARGSPEC: dict[str, dict[str, Any]] = {
    "dest": {"type": "path"},
}


def deliver_manifest(text: str, dest: str | None, no_log_values: set[str]) -> dict[str, Any]:
    """The `manifest` result of a transform, or, with `dest`, the file it went to.

    With `dest`, every Secret value of `text` joins `no_log_values` (the module's, so Ansible masks it everywhere)
    and `text` is written atomically with mode 0600. Raises kube_yaml.KubeYAMLError or OSError.
    """
    if not dest:
        return {"manifest": text}
    no_log_values.update(manifest_secret_values(text))
    write_atomic(dest, text, 0o600)
    return {"dest": dest}


def mask_input_secrets(manifest: str | None, dest: str | None, no_log_values: set[str]) -> None:
    """With `dest`, mask the Secret values of the `manifest` text a transform was given, before anything can fail.

    The text is part of the invocation Ansible shows at -vvv; unreadable text is left to the transform to report.
    """
    if not dest or not manifest:
        return
    try:
        no_log_values.update(manifest_secret_values(manifest))
    except kube_yaml.KubeYAMLError:
        return


def credential_forms(params: Any) -> set[str]:
    """Every form of each password in `params` (any `*password` key, nested in dicts and lists) that a URL, an
    HTTP Basic header or a registry auth file gives it: as is, URL-quoted, and base64 of `user:password` with the
    matching `*username` key beside it."""
    forms: set[str] = set()
    if isinstance(params, list):
        for item in params:
            forms |= credential_forms(item)
    if not isinstance(params, dict):
        return forms
    for key, value in params.items():
        if isinstance(value, (dict, list)):
            forms |= credential_forms(value)
        elif key.endswith("password") and isinstance(value, str) and value:
            forms |= {value, quote(value, safe="")}
            username = params.get(key[: -len("password")] + "username")
            if isinstance(username, str) and username:
                forms.add(base64.b64encode(f"{username}:{value}".encode()).decode())
    return forms
