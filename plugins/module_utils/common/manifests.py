# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walk Kubernetes documents: find every pod spec, hooks and configured CRD paths included.

Shared by `ca_inject` (patching pod specs) and `image_mirror` (discovering images), so both agree
on which places hold pod specs.

Kubernetes reads a null list as empty and a null map as empty (`initContainers:` with nothing under
it, `annotations:` left blank by a template). `list_field` and `map_field` read such fields the same
way for code that writes into them; `metadata_of` and `annotations_of` for code that only reads.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Iterator, NamedTuple

# kind -> path of keys from the document root to its pod spec
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


class PodSpecRef(NamedTuple):
    """Where a pod spec sits: the document, the spec dict itself and a readable path."""

    document: dict
    spec: dict
    path: str


def parse_crd_path(expression: str) -> tuple[str, tuple[str, ...]]:
    """`Kind:spec.template.spec` -> ("Kind", ("spec", "template", "spec")). Raises ValueError."""
    kind, sep, dotted = expression.partition(":")
    keys = tuple(part for part in dotted.split(".") if part)
    if not sep or not kind or not keys:
        raise ValueError(f"pod spec path {expression!r} must look like 'Kind:spec.path.to.podspec'")
    return kind, keys


def list_field(obj: dict, key: str) -> list:
    """`obj[key]` for appending to: a missing or null value is replaced in `obj` by a new empty list."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = []
    return value


def map_field(obj: dict, key: str) -> dict:
    """`obj[key]` for setting keys in: a missing or null value is replaced in `obj` by a new empty map."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    return value


def metadata_of(document: dict) -> dict:
    """The document's metadata for reading ({} when missing or null); never written into the document."""
    meta = document.get("metadata")
    return meta if isinstance(meta, dict) else {}


def annotations_of(document: dict) -> dict:
    """The document's annotations for reading ({} when missing or null)."""
    annotations = metadata_of(document).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _dig(node: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def document_name(document: dict) -> str:
    meta = metadata_of(document)
    namespace = meta.get("namespace")
    name = meta.get("name") or "<unnamed>"
    return f"{document.get('kind') or '?'}/{namespace + '/' if namespace else ''}{name}"


def pod_specs(document: dict, extra_paths: dict[str, list[tuple[str, ...]]] | None = None) -> Iterator[PodSpecRef]:
    """Yield every pod spec in one document (built-in kinds, then user-named CRD paths)."""
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    paths: list[tuple[str, ...]] = []
    if kind in POD_SPEC_PATHS:
        paths.append(POD_SPEC_PATHS[kind])
    if extra_paths and kind in extra_paths:
        paths.extend(extra_paths[kind])
    for keys in paths:
        spec = _dig(document, keys)
        if isinstance(spec, dict):
            yield PodSpecRef(document, spec, ".".join(keys))


def containers(spec: dict) -> Iterator[tuple[str, dict]]:
    """Yield (list name, container) for init, regular and ephemeral containers of a pod spec."""
    for list_name in CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            if isinstance(container, dict):
                yield list_name, container


def item_name(item: Any) -> str:
    """The name of a container, variable, mount or volume ("" for a null item or name)."""
    name = item.get("name") if isinstance(item, dict) else None
    return "" if name is None else str(name)


def is_helm_hook(document: dict) -> bool:
    return "helm.sh/hook" in annotations_of(document)


# ConfigMap and Secret fields whose values a workload reads (Secret `data` is base64)
CONFIG_VALUE_FIELDS = {"ConfigMap": ("data",), "Secret": ("stringData", "data")}


class ConfigValue(NamedTuple):
    """One value of a ConfigMap or Secret, as text, and how to put a new text back in its place."""

    field: str
    key: str
    text: str
    replace: Callable[[str], None]


def config_values(document: dict) -> Iterator[ConfigValue]:
    """The text values of a ConfigMap's `data` or a Secret's `stringData`/`data` (decoded); others are skipped."""
    kind = str(document.get("kind"))
    for field in CONFIG_VALUE_FIELDS.get(kind, ()):
        values = document.get(field)
        if not isinstance(values, dict):
            continue
        encoded = kind == "Secret" and field == "data"
        for key, value in values.items():
            text = _base64_text(value) if encoded else value
            if isinstance(text, str):
                yield ConfigValue(field, str(key), text, _replacer(values, key, encoded))


def _base64_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _replacer(values: dict, key: Any, encoded: bool) -> Callable[[str], None]:
    def replace(text: str) -> None:
        values[key] = base64.b64encode(text.encode()).decode() if encoded else text

    return replace
