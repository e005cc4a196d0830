# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make every container of a set of Kubernetes documents trust the site CA (the CAs `ca.validate_cas` accepted).

A pure transform (no cluster access), used by the `ca_inject` module, the pipeline role's Helm 4
post-renderer and the benchmark:

1. `inject` patches every pod template (via `manifests.pod_specs`) per runtime (Java through `java`) and
   emits the ConfigMap and Secret carrying the bundle (`ca.build_bundle`) in every namespace involved;
2. `inject_manifest` does the same over multi-document YAML text (what `helm template` prints and a Helm
   post-renderer reads), parsing only the documents `inject` may change and writing the others back as
   their original text (`common.manifest_stream`).

Applying `inject` to its own output returns the same documents. Null lists and maps (a template's
`initContainers:` or `env:` with nothing under it) count as empty, as Kubernetes reads them.
"""

from __future__ import annotations

import base64
import copy
import gc
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ansible_collections.airgap.renku.plugins.module_utils.common import manifest_stream
from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import (
    POD_SPEC_PATHS,
    annotations_of,
    containers,
    document_name,
    is_helm_hook,
    item_name,
    list_field,
    metadata_of,
    parse_crd_path,
    pod_specs,
)
from ansible_collections.airgap.renku.plugins.module_utils.platform import java
from ansible_collections.airgap.renku.plugins.module_utils.platform.ca import (
    BUNDLE_KEY,
    CUSTOM_KEY,
    CAInfo,
    build_bundle,
)
from ansible_collections.airgap.renku.plugins.module_utils.platform.release import (
    ALWAYS_APPLY_ANNOTATION,
    release_digest,
)

MOUNT_DIR = "/etc/airgap-ca"
BUNDLE_VOLUME = "airgap-ca-bundle"
MANAGED_BY = "airgap.renku.ca_inject"

# runtime -> (variable, which file it points at). Go and OpenSSL read the same variable.
RUNTIME_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (("REQUESTS_CA_BUNDLE", BUNDLE_KEY),),
    "openssl": (("SSL_CERT_FILE", BUNDLE_KEY), ("CURL_CA_BUNDLE", BUNDLE_KEY)),
    "go": (("SSL_CERT_FILE", BUNDLE_KEY),),
    "git": (("GIT_SSL_CAINFO", BUNDLE_KEY),),
    # NODE_EXTRA_CA_CERTS adds to Node's built-in roots, so it gets only the custom CAs
    "node": (("NODE_EXTRA_CA_CERTS", CUSTOM_KEY),),
    "grpc": (("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", BUNDLE_KEY),),
    "pip": (("PIP_CERT", BUNDLE_KEY),),
    "aws": (("AWS_CA_BUNDLE", BUNDLE_KEY),),
    "java": (),  # handled with an init container and JAVA_TOOL_OPTIONS
}
ALL_RUNTIMES = tuple(RUNTIME_ENV)
DEFAULT_RUNTIMES = ("python", "openssl", "go", "git", "node", "grpc", "pip", "aws")


@dataclass
class InjectOptions:
    bundle_name: str = "airgap-ca-bundle"
    namespace: str = "default"
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    java_images: tuple[str, ...] = java.DEFAULT_JAVA_IMAGES
    selectors: list[dict[str, Any]] = field(default_factory=list)
    overwrite: bool = False
    extra_paths: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    extra_namespaces: tuple[str, ...] = ()
    emit_bundle: bool = True
    emit_secret: bool = True
    java_truststore_password: str = "changeit"
    mount_dir: str = MOUNT_DIR


def options_from(settings: dict[str, Any]) -> InjectOptions:
    """The transform's options from the `ca_inject` module's parameter names, the one mapping every caller uses
    (the module, and the Helm post-renderer whose JSON configuration uses the same names). Missing or null
    settings take the defaults; a malformed `pod_spec_paths` entry raises ValueError naming it."""
    extra: dict[str, list[tuple[str, ...]]] = {}
    for expression in settings.get("pod_spec_paths") or []:
        kind, keys = parse_crd_path(expression)
        extra.setdefault(kind, []).append(keys)
    defaults = InjectOptions()

    def pick(name: str, default: Any) -> Any:
        value = settings.get(name)
        return default if value is None else value

    return InjectOptions(
        bundle_name=pick("bundle_name", defaults.bundle_name),
        namespace=pick("namespace", defaults.namespace),
        runtimes=tuple(pick("runtimes", defaults.runtimes)),
        java_images=tuple(pick("java_images", defaults.java_images)),
        selectors=list(pick("selectors", [])),
        overwrite=bool(pick("overwrite", defaults.overwrite)),
        extra_paths=extra,
        extra_namespaces=tuple(pick("extra_namespaces", ())),
        emit_bundle=bool(pick("emit_bundle", defaults.emit_bundle)),
        emit_secret=bool(pick("emit_secret", defaults.emit_secret)),
        java_truststore_password=pick("java_truststore_password", defaults.java_truststore_password),
    )


# --------------------------------------------------------------------------------------------------
# bundle objects


def bundle_objects(full: str, custom: str, namespaces: Iterable[str], options: InjectOptions) -> list[dict]:
    """The ConfigMap (every runtime) and Secret (for consumers that only read Secrets) per namespace."""
    objects: list[dict] = []
    digest = hashlib.sha256((full + custom).encode()).hexdigest()[:16]
    for namespace in sorted(set(namespaces)):
        meta = {
            "name": options.bundle_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY.replace(".", "-")[:63]},
            "annotations": {ALWAYS_APPLY_ANNOTATION: "true", "airgap.renku/ca-bundle-digest": digest},
        }
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": copy.deepcopy(meta),
                "data": {BUNDLE_KEY: full, CUSTOM_KEY: custom, java.JAVA_SCRIPT_KEY: java.JAVA_TRUSTSTORE_SCRIPT},
            }
        )
        if options.emit_secret:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": copy.deepcopy(meta),
                    "data": {BUNDLE_KEY: _b64(full), CUSTOM_KEY: _b64(custom)},
                }
            )
    return objects


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------------------------------
# pod spec patching


def runtimes_for(document: dict, list_name: str, container: dict, options: InjectOptions) -> tuple[str, ...] | None:
    """Runtimes one container gets: the first matching selector decides, else the defaults.

    None means the container is excluded.
    """
    meta = metadata_of(document)
    facts = {  # a null field reads as ""
        "kind": document.get("kind") or "",
        "workload": meta.get("name") or "",
        "namespace": meta.get("namespace") or options.namespace,
        "container": container.get("name") or "",
        "image": container.get("image") or "",
    }
    for selector in options.selectors:
        if all(re.search(selector[key], facts[key]) for key in facts if selector.get(key) is not None):
            if selector.get("exclude"):
                return None
            return tuple(selector.get("runtimes") or ())
    if list_name == "ephemeralContainers":
        return None  # debug containers are added later by users; their spec cannot be patched in place
    runtimes = tuple(options.runtimes)
    if "java" not in runtimes and any(re.search(p, facts["image"]) for p in options.java_images):
        runtimes += ("java",)
    return runtimes


def _set_env(container: dict, name: str, value: str, overwrite: bool) -> str:
    """Set one variable; returns 'set', 'unchanged', 'kept' (an existing value that is not ours) or 'replaced'.

    A chart's own value is kept when it may hold the CA: it comes from elsewhere (`valueFrom`) or names a file
    on a volume the chart mounts (Renku's `/etc/ssl/certs`, which its init container fills with the custom CAs).
    A path into the image's own file system cannot hold a private CA, so it is replaced by ours.
    """
    env = list_field(container, "env")
    for item in env:
        if item and item.get("name") == name:  # a null item is skipped
            if item.get("value") == value and "valueFrom" not in item:
                return "unchanged"
            outcome = "set"
            if not overwrite:
                if "valueFrom" in item or not _names_image_file(container, item.get("value")):
                    return "kept"
                outcome = "replaced"
            item.pop("valueFrom", None)
            item["value"] = value
            return outcome
    env.append({"name": name, "value": value})
    return "set"


def _names_image_file(container: dict, value: Any) -> bool:
    """Whether `value` is an absolute path that no volume mount of the container provides."""
    if not isinstance(value, str) or not value.startswith("/"):
        return False
    for mount in container.get("volumeMounts") or []:
        path = str((mount or {}).get("mountPath") or "").rstrip("/")
        if path and (value == path or value.startswith(path + "/")):
            return False
    return True


def _ensure_mount(container: dict, name: str, path: str, read_only: bool = True) -> bool:
    mounts = list_field(container, "volumeMounts")
    wanted = {"name": name, "mountPath": path, "readOnly": read_only}
    for mount in mounts:
        if mount and mount.get("name") == name:
            if mount == wanted:
                return False
            mount.clear()
            mount.update(wanted)
            return True
    mounts.append(wanted)
    return True


def _ensure_volume(spec: dict, volume: dict) -> bool:
    volumes = list_field(spec, "volumes")
    for index, existing in enumerate(volumes):
        if existing and existing.get("name") == volume["name"]:
            if existing == volume:
                return False
            volumes[index] = volume
            return True
    volumes.append(volume)
    return True


def _bundle_env(options: InjectOptions) -> list[dict]:
    """The variables of the configured runtimes, each once, pointing into the mounted bundle."""
    env: dict[str, str] = {}
    for runtime in options.runtimes:
        for variable, key in RUNTIME_ENV.get(runtime, ()):
            env.setdefault(variable, f"{options.mount_dir}/{key}")
    return [{"name": name, "value": value} for name, value in env.items()]


def _ensure_init_first(spec: dict, init: dict) -> bool:
    """Our Java init containers run before the chart's own (which may be Java too)."""
    inits = list_field(spec, "initContainers")
    for index, existing in enumerate(inits):
        if existing and existing.get("name") == init["name"]:
            if existing == init:
                return False
            inits[index] = init
            return True
    position = sum(1 for c in inits if item_name(c).startswith(java.JAVA_INIT_PREFIX))
    inits.insert(position, init)
    return True


def patch_container(container: dict, runtimes: tuple[str, ...], options: InjectOptions) -> dict[str, Any]:
    """Env and mounts for one container; returns its report entry."""
    entry: dict[str, Any] = {
        "name": item_name(container),
        "runtimes": list(runtimes),
        "set": [],
        "kept": [],
        "replaced": [],
    }
    changed = _ensure_mount(container, BUNDLE_VOLUME, options.mount_dir)
    done: set[str] = set()
    for runtime in runtimes:
        for variable, key in RUNTIME_ENV[runtime]:
            if variable in done:
                continue
            done.add(variable)
            outcome = _set_env(container, variable, f"{options.mount_dir}/{key}", options.overwrite)
            changed |= outcome in ("set", "replaced")
            if outcome == "kept":
                entry["kept"].append(variable)
            else:
                entry["set"].append(variable)
            if outcome == "replaced":
                entry["replaced"].append(variable)
    if "java" in runtimes:
        changed |= _patch_java_env(container, options, entry)
    entry["changed"] = changed
    return entry


def _patch_java_env(container: dict, options: InjectOptions, entry: dict[str, Any]) -> bool:
    directory, store = java.truststore_paths(item_name(container))
    env = list_field(container, "env")
    current = next((item for item in env if item and item.get("name") == "JAVA_TOOL_OPTIONS"), None)
    changed = _ensure_mount(container, java.JAVA_VOLUME, directory.rsplit("/", 1)[0])
    if current is not None and "valueFrom" in current and not options.overwrite:
        entry["kept"].append("JAVA_TOOL_OPTIONS")
        return changed
    existing = current.get("value") if current else None
    if existing and store in existing:
        entry["set"].append("JAVA_TOOL_OPTIONS")
        return changed
    wanted = java.tool_options(None if options.overwrite else existing, store, options.java_truststore_password)
    if wanted is None:
        entry["kept"].append("JAVA_TOOL_OPTIONS")
        return changed
    if current is None:
        env.append({"name": "JAVA_TOOL_OPTIONS", "value": wanted})
    else:
        current.pop("valueFrom", None)
        current["value"] = wanted
    entry["set"].append("JAVA_TOOL_OPTIONS")
    return True


def patch_pod_spec(document: dict, spec: dict, options: InjectOptions) -> tuple[list[dict], bool]:
    """Patch one pod spec in place; returns the per-container report and whether anything changed."""
    report: list[dict] = []
    changed = False
    java_containers: list[dict] = []
    ours = [c for c in spec.get("initContainers") or [] if item_name(c).startswith(java.JAVA_INIT_PREFIX)]
    for list_name, container in list(containers(spec)):
        if any(container is own for own in ours):
            continue
        runtimes = runtimes_for(document, list_name, container, options)
        if not runtimes:
            continue
        entry = patch_container(container, runtimes, options)
        entry["list"] = list_name
        report.append(entry)
        changed |= entry.pop("changed")
        if "java" in runtimes:
            java_containers.append(container)
    if not report:
        return report, changed
    volume = {"name": BUNDLE_VOLUME, "configMap": {"name": options.bundle_name}}
    changed |= _ensure_volume(spec, volume)
    if java_containers:
        changed |= _ensure_volume(spec, {"name": java.JAVA_VOLUME, "emptyDir": {}})
        for container in java_containers:
            changed |= _ensure_init_first(
                spec,
                java.init_container(
                    container, options.mount_dir, options.java_truststore_password, BUNDLE_VOLUME, _bundle_env(options)
                ),
            )
    return report, changed


def document_namespace(document: dict, default: str) -> str:
    return metadata_of(document).get("namespace") or default


def inject(documents: list[Any], cas: list[CAInfo], system_pem: str, options: InjectOptions) -> dict[str, Any]:
    """The whole transform: patched documents (copies), bundle objects and a per-workload report."""
    # the data is acyclic: collecting cycles while building 10k documents only costs time
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        return _inject(documents, cas, system_pem, options)
    finally:
        if gc_enabled:
            gc.enable()


def _inject(documents: list[Any], cas: list[CAInfo], system_pem: str, options: InjectOptions) -> dict[str, Any]:
    out_docs: list[Any] = []
    report: list[dict] = []
    namespaces: set[str] = set(options.extra_namespaces)
    modified = False
    for document in documents:
        if not isinstance(document, dict):
            out_docs.append(document)
            continue
        if _is_bundle_object(document, options):
            continue  # our own objects from an earlier pass: re-emitted below
        refs = list(pod_specs(document, options.extra_paths))
        if not refs:
            out_docs.append(document)  # nothing to patch, nothing copied
            continue
        doc = dict(document)
        for ref in refs:
            spec = _writable_spec(doc, tuple(ref.path.split(".")))
            entries, changed = patch_pod_spec(doc, spec, options)
            if not entries:
                continue
            modified |= changed
            namespace = document_namespace(doc, options.namespace)
            namespaces.add(namespace)
            report.append(
                {
                    "workload": document_name(doc),
                    "kind": doc.get("kind"),
                    "namespace": namespace,
                    "path": ref.path,
                    "hook": annotations_of(doc).get("helm.sh/hook") if is_helm_hook(doc) else None,
                    "containers": entries,
                    "changed": changed,
                }
            )
        out_docs.append(doc)
    bundle: list[dict] = []
    full = custom = ""
    if options.emit_bundle:
        full, custom = build_bundle(cas, system_pem)
        bundle = bundle_objects(full, custom, namespaces or {options.namespace}, options)
    return {
        "documents": out_docs,
        "bundle": bundle,
        "report": report,
        "modified": modified,
        "namespaces": sorted(namespaces or {options.namespace}),
    }


def _writable_spec(doc: dict, keys: tuple[str, ...]) -> dict:
    """Copy on write: the dicts from `doc` down to the pod spec, and what patching changes in the spec.

    The input documents are never modified, and the rest of each document is shared, not copied. A
    null list is not copied: `list_field` replaces it in the copied spec or container when needed.
    """
    node = doc
    for key in keys:
        node[key] = dict(node[key])
        node = node[key]
    for list_name in ("initContainers", "containers", "ephemeralContainers", "volumes"):
        if isinstance(node.get(list_name), list):
            node[list_name] = [_writable_container(c) if list_name != "volumes" else c for c in node[list_name]]
    return node


def _writable_container(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    copied = dict(container)
    for list_name in ("env", "volumeMounts"):
        if isinstance(copied.get(list_name), list):
            copied[list_name] = [dict(item) if isinstance(item, dict) else item for item in copied[list_name]]
    return copied


def manifest_kinds(options: InjectOptions) -> frozenset[str]:
    """The kinds `inject` may change or drop: those holding pod templates, and the kinds of the bundle objects."""
    return frozenset(POD_SPEC_PATHS) | frozenset(options.extra_paths) | {"ConfigMap", "Secret"}


def inject_manifest(
    text: str, cas: list[CAInfo], system_pem: str, options: InjectOptions, name: str = "manifest"
) -> dict[str, Any]:
    """`inject` over multi-document YAML text, reading only the documents of `manifest_kinds` (and unknown ones).

    Returns what `inject` returns, `documents` left empty, plus `manifest`: every document in input order (bundle
    objects of an earlier pass left out), each one `inject` did not change as its original text and each changed
    one dumped; and `parts`, the `manifest_stream.Part`s behind it (for `manifest_digest`).
    Raises kube_yaml.KubeYAMLError.
    """
    parts = [
        part
        for part in manifest_stream.read(text, manifest_kinds(options), name)
        if not (part.parsed and isinstance(part.document, dict) and _is_bundle_object(part.document, options))
    ]
    parsed = [part for part in parts if part.parsed]
    result = inject([part.document for part in parsed], cas, system_pem, options)
    # without bundle objects in its input, `inject` returns one document per input document, in order: the
    # input object itself when it has no pod template, else a copy, patched or not (hence the comparison)
    for part, document in zip(parsed, result["documents"], strict=True):
        if document is not part.document and document != part.document:
            part.document, part.dirty = document, True
    return {**result, "documents": [], "manifest": manifest_stream.emit(parts), "parts": parts}


def manifest_digest(bundle: list[dict], parts: list[manifest_stream.Part]) -> str:
    """SHA-256 of what `inject_manifest` returns: the bundle objects, then each document in order.

    A document counts by the text `inject_manifest` wrote for it, except a Secret, which counts as
    `release.release_digest` reads it: its values are left out because charts regenerate them on every render.
    Stable across identical runs; it differs from the digest of the same release read as documents.
    """
    hasher = hashlib.sha256(release_digest(bundle).encode())
    for part in parts:
        document = part.document
        if part.parsed and isinstance(document, dict) and document.get("kind") == "Secret":
            hasher.update(f"---\n# Secret {release_digest([document])}\n".encode())
        else:
            hasher.update(part.output.encode())
    return hasher.hexdigest()


def _is_bundle_object(document: dict, options: InjectOptions) -> bool:
    return (
        document.get("kind") in ("ConfigMap", "Secret")
        and metadata_of(document).get("name") == options.bundle_name
        and annotations_of(document).get(ALWAYS_APPLY_ANNOTATION) == "true"
    )
