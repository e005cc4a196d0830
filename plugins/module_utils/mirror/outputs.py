# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What later stages make of the mirror lock file.

- `values_overlay`: a Helm values overlay pointing a chart's image values at the internal registry,
  pinned by digest (string values and `{registry, repository, tag, digest}` maps are both handled);
- `rewrite_documents`: the same on rendered manifests, for charts whose values cannot express it;
- `containerd_hosts` / `crio_registries_conf`: runtime mirror configuration, with the site CA;
- `pull_secret` / `attach_pull_secret`: a `kubernetes.io/dockerconfigjson` Secret and its use
  from pod specs or a ServiceAccount.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import (
    config_values,
    containers,
    document_name,
    pod_specs,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import ImageRefError, parse_image


class LockError(ValueError):
    """The lock file is missing a field a consumer needs."""


def _index(lock: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Every spelling of a mirrored image -> its lock entry: the source and the internal destination,
    by tag and by digest (a values overlay points a chart at the destination before the render)."""
    index: Dict[str, Dict[str, Any]] = {}
    for entry in (lock or {}).get("images") or []:
        if not entry.get("source") or not entry.get("destination") or not entry.get("digest"):
            raise LockError(f"lock entry {entry!r} needs source, destination and digest")
        for text in (entry["destination"], entry["source"]):
            ref = parse_image(text)
            index[str(ref)] = entry
            index[ref.pinned(entry["digest"])] = entry
    return index


def pinned_destination(entry: Dict[str, Any]) -> Tuple[str, str, str]:
    """(registry host, repository, digest) of a lock entry's destination."""
    dest = parse_image(entry["destination"])
    return dest.registry, dest.repository, entry["digest"]


def pinned_reference(entry: Dict[str, Any]) -> str:
    host, repo, digest = pinned_destination(entry)
    return f"{host}/{repo}@{digest}"


def lookup(lock_index: Dict[str, Dict[str, Any]], text: str) -> Optional[Dict[str, Any]]:
    try:
        ref = parse_image(text)
    except ImageRefError:
        return None
    return lock_index.get(str(ref)) or (lock_index.get(ref.pinned(ref.digest)) if ref.digest else None)


def resolve_image(lock: Dict[str, Any], image: str) -> str:
    """The internal, digest-pinned reference for `image`; raises LockError when it was not mirrored."""
    entry = lookup(_index(lock), image)
    if entry is None:
        raise LockError(f"{image} is not in the mirror lock file; add it to the mirror's images and rerun")
    return pinned_reference(entry)


# --------------------------------------------------------------------------------------------------
# values overlay


def _image_map_ref(node: Dict[str, Any]) -> Optional[str]:
    """The reference a `{registry?, repository|image, tag?, digest?}` map stands for, if it is one."""
    repo = node.get("repository") if isinstance(node.get("repository"), str) else None
    for key in ("image", "name"):  # {image, tag} and Renku's {name, tag}
        if repo is None and isinstance(node.get(key), str) and ("tag" in node or "registry" in node):
            repo = node[key]
    if not repo:
        return None
    text = f"{node['registry']}/{repo}" if isinstance(node.get("registry"), str) and node["registry"] else repo
    if node.get("digest"):
        return f"{text}@{node['digest']}"
    if node.get("tag") not in (None, ""):
        return f"{text}:{node['tag']}"
    return None


def _has_registry_host(text: str) -> bool:
    first, sep, _rest = text.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _overlay_for(
    node: Any, index: Dict[str, Dict[str, Any]], used: List[str], relative_to: Optional[str] = None
) -> Tuple[bool, Any]:
    """(changed, overlay) for one value: a string, an image map, a dict or a list.

    With `relative_to` (the chart's global image registry), references without a registry host are
    relative to it: they stay as they are (the registry value is redirected instead).
    """
    if isinstance(node, str):
        if relative_to and not _has_registry_host(node):
            entry = lookup(index, f"{relative_to}/{node}")
            if entry is not None:
                used.append(entry["source"])
            return False, node
        entry = lookup(index, node) if "/" in node or ":" in node else None
        if entry is None:
            return False, node
        used.append(entry["source"])
        return True, pinned_reference(entry)
    if isinstance(node, dict):
        ref = _image_map_ref(node)
        entry = lookup(index, ref) if ref else None
        if entry is not None:
            used.append(entry["source"])
            host, repo, digest = pinned_destination(entry)
            key = next(k for k in ("repository", "image", "name") if isinstance(node.get(k), str))
            overlay: Dict[str, Any] = {key: repo if "registry" in node else f"{host}/{repo}", "digest": digest}
            if "registry" in node:
                overlay["registry"] = host
            if "tag" in node:
                overlay["tag"] = parse_image(entry["source"]).tag or ""
            return True, overlay
        result = {}
        for key, value in node.items():
            changed, sub = _overlay_for(value, index, used, relative_to)
            if changed:
                result[key] = sub
        return bool(result), result
    if isinstance(node, list):
        items = [_overlay_for(item, index, used, relative_to) for item in node]
        if not any(item[0] for item in items):
            return False, node
        # Helm replaces lists whole: the overlay carries the full list with the changed items.
        return True, [sub if changed else copy.deepcopy(item) for (changed, sub), item in zip(items, node, strict=True)]
    return False, node


def values_overlay(values: Dict[str, Any], lock: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """A values overlay pinning every image value found in `values`; and the sources it pinned."""
    used: List[str] = []
    values = values or {}
    global_values = values.get("global") if isinstance(values.get("global"), dict) else {}
    registry = global_values.get("imageRegistry") if isinstance(global_values.get("imageRegistry"), str) else None
    _changed, overlay = _overlay_for(values, _index(lock), used, registry or None)
    overlay = overlay or {}
    if registry:
        # Charts that build `<global.imageRegistry>/<path>`: point the registry at where the mirror
        # put that registry's repositories (same paths below it); such references cannot carry a digest.
        base = _mirrors(lock).get(parse_image(f"{registry}/x/y:z").registry)
        if base and any(not _has_registry_host(u) or u.startswith(registry) for u in used):
            overlay.setdefault("global", {})["imageRegistry"] = base
    return overlay, sorted(set(used))


# --------------------------------------------------------------------------------------------------
# rendered manifests


def rewrite_documents(
    documents: List[Any],
    lock: Dict[str, Any],
    strict: bool = True,
    extra_paths: Optional[Dict[str, List[Tuple[str, ...]]]] = None,
    pinned: Optional[Dict[str, str]] = None,
) -> List[Any]:
    """Copies of `documents` with every image pinned to its internal reference by digest.

    Container images of every pod spec, and Secret/ConfigMap values that are image references of the
    lock (Renku names the images its sessions run in the notebooks Secret). With `strict`, a container
    image that is not in the lock stops the rewrite with its name and where it is used. `pinned`, when
    given, collects each reference rewritten and what it became.
    """
    index = _index(lock)
    out = []
    missing: Dict[str, List[str]] = {}
    seen: Dict[str, str] = {} if pinned is None else pinned
    for doc in documents:
        doc = copy.deepcopy(doc)
        if isinstance(doc, dict):
            _pin_containers(doc, index, missing, seen, extra_paths)
            _pin_config_values(doc, index, seen)
        out.append(doc)
    if strict and missing:
        listed = "; ".join(f"{image} (used by {', '.join(places)})" for image, places in sorted(missing.items()))
        raise LockError(f"images not in the mirror lock file: {listed}; add them to the mirror stage and rerun it")
    return out


def pin_manifest(text: str, lock_text: str, pod_spec_paths: List[str], strict: bool = True) -> Dict[str, Any]:
    """`rewrite_documents` over multi-document YAML text; what the `image_pin` module returns.

    Only documents that can hold an image are read (workloads, the CRD kinds of `pod_spec_paths`, ConfigMaps and
    Secrets); the others, the big CRDs among them, go back out as their original text.
    """
    from ansible_collections.airgap.renku.plugins.module_utils.common import manifest_stream
    from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import load_one
    from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import (
        CONFIG_VALUE_FIELDS,
        POD_SPEC_PATHS,
        parse_crd_path,
    )

    extra: Dict[str, List[Tuple[str, ...]]] = {}
    for expression in pod_spec_paths:
        kind, keys = parse_crd_path(expression)
        extra.setdefault(kind, []).append(keys)
    parts = manifest_stream.read(text, {*POD_SPEC_PATHS, *extra, *CONFIG_VALUE_FIELDS})
    parsed = [part for part in parts if part.parsed]
    pinned: Dict[str, str] = {}
    out = rewrite_documents([part.document for part in parsed], load_one(lock_text) or {}, strict, extra, pinned)
    for part, document in zip(parsed, out, strict=True):
        if document != part.document:
            part.document, part.dirty = document, True
    return {"manifest": manifest_stream.emit(parts), "pinned": pinned, "documents": len(parts)}


def _pin_containers(
    doc: Dict[str, Any],
    index: Dict[str, Dict[str, Any]],
    missing: Dict[str, List[str]],
    pinned: Dict[str, str],
    extra_paths: Optional[Dict[str, List[Tuple[str, ...]]]] = None,
) -> None:
    for ref in pod_specs(doc, extra_paths):
        for _list, container in containers(ref.spec):
            image = container.get("image")
            if not isinstance(image, str):
                continue
            entry = lookup(index, image)
            if entry is None:
                missing.setdefault(image, []).append(f"{document_name(doc)} container {container.get('name', '?')}")
            else:
                container["image"] = pinned[image] = pinned_reference(entry)


def _pin_config_values(doc: Dict[str, Any], index: Dict[str, Dict[str, Any]], pinned: Dict[str, str]) -> None:
    """Whole values of a ConfigMap's `data` or a Secret's `stringData`/`data` that name a mirrored image."""
    for value in config_values(doc):
        text = value.text.strip()
        # the lock decides what is an image; a tag or digest must be written out (no implicit latest)
        if not text or len(text) > 512 or any(c.isspace() for c in text) or not re.search(r"[:@][^/]*$", text):
            continue
        entry = lookup(index, text)
        if entry is not None:
            pinned[text] = pinned_reference(entry)
            value.replace(pinned[text])


# --------------------------------------------------------------------------------------------------
# runtime mirror configuration


def _mirrors(lock: Dict[str, Any]) -> Dict[str, str]:
    """Source registry host -> destination `host/path` prefix under which its repositories live."""
    result: Dict[str, str] = {}
    for entry in (lock or {}).get("images") or []:
        src = parse_image(entry["source"])
        dest = parse_image(entry["destination"])
        if not dest.repository.endswith(src.repository):
            continue
        base = dest.repository[: -len(src.repository)].strip("/")
        result.setdefault(src.registry, f"{dest.registry}/{base}" if base else dest.registry)
    return result


def containerd_hosts(lock: Dict[str, Any], ca_path: str, certs_dir: str = "/etc/containerd/certs.d") -> Dict[str, str]:
    """`{path: content}` of `hosts.toml` files: each source registry resolved from the internal one only."""
    files = {}
    for source, target in sorted(_mirrors(lock).items()):
        host, _sep, base = target.partition("/")
        path = f"/v2/{base}" if base else ""  # containerd adds /v2 itself unless override_path
        url, override = f"https://{host}{path}", "true" if base else "false"
        files[f"{certs_dir}/{source}/hosts.toml"] = (
            f"# Generated from the mirror lock file: {source} is served by {target}\n"
            "# `server` is the internal registry too: without it containerd falls back to the public upstream\n"
            "# for an image the mirror does not hold; with it nothing is ever looked up outside the site.\n"
            f'server = "{url}"\n'
            f'ca = "{ca_path}"\n'
            f"override_path = {override}\n"
            "\n"
            f'[host."{url}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            f'  ca = "{ca_path}"\n'
            f"  override_path = {override}\n"
        )
    return files


def crio_registries_conf(lock: Dict[str, Any]) -> str:
    """CRI-O / containers `registries.conf`: each source registry redirected, blocked upstream.

    The CA goes in `/etc/containers/certs.d/<internal host>/ca.crt` (see `crio_ca_path`).
    """
    lines = ["# Generated from the mirror lock file", "unqualified-search-registries = []", ""]
    for source, target in sorted(_mirrors(lock).items()):
        lines += [
            "[[registry]]",
            f'prefix = "{source}"',
            f'location = "{target}"',
            "blocked = false",
            "",
        ]
    return "\n".join(lines)


def crio_ca_path(registry_host: str) -> str:
    return f"/etc/containers/certs.d/{registry_host}/ca.crt"


# --------------------------------------------------------------------------------------------------
# pull secret


def dockerconfigjson(registry: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}}, sort_keys=True)


def pull_secret(name: str, namespace: str, registry: str, username: str, password: str) -> Dict[str, Any]:
    """A `kubernetes.io/dockerconfigjson` Secret for the internal registry."""
    data = base64.b64encode(dockerconfigjson(registry, username, password).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "airgap.renku"}},
        "data": {".dockerconfigjson": data},
    }


def attach_pull_secret(documents: List[Any], secret_name: str) -> List[Any]:
    """Copies of `documents` whose pod specs and ServiceAccounts reference the pull Secret once."""
    out = []
    for doc in documents:
        doc = copy.deepcopy(doc)
        if isinstance(doc, dict):
            targets = [ref.spec for ref in pod_specs(doc)]
            if doc.get("kind") == "ServiceAccount":
                targets.append(doc)
            for target in targets:
                secrets = target.setdefault("imagePullSecrets", [])
                if not any(isinstance(s, dict) and s.get("name") == secret_name for s in secrets):
                    secrets.append({"name": secret_name})
        out.append(doc)
    return out
