# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over rendered manifests.

{{ rendered.stdout | airgap.renku.k8s_documents }}: the documents, read through the collection's one loader.
{{ first_docs | airgap.renku.generated_fields(second_docs) }}: what a chart generates at random.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import KubeYAMLError, load_documents
from ansible_collections.airgap.renku.plugins.module_utils.platform.generated import generated_fields as _generated


def k8s_documents(text: str) -> list[Any]:
    """The documents of a multi-document YAML text; empty documents dropped."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"k8s_documents: expected YAML text, got {type(text).__name__}")
    try:
        return load_documents(text)
    except KubeYAMLError as exc:
        raise AnsibleFilterError(f"k8s_documents: {exc}") from exc


def generated_fields(first: list[Any], second: list[Any]) -> list[dict[str, Any]]:
    """Fields that differ between two renders of one chart with the same values (random names, passwords ...)."""
    try:
        return _generated(list(first), list(second))
    except ValueError as exc:
        raise AnsibleFilterError(f"generated_fields: {exc}") from exc


class FilterModule:
    """Manifest filters."""

    def filters(self) -> dict[str, Any]:
        return {"k8s_documents": k8s_documents, "generated_fields": generated_fields}
