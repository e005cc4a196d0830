"""Fingerprint the part of the lab a scenario may change, so its check step can prove nothing changed.

Reads a JSON scope on stdin and prints one JSON object, `{key: fingerprint}`:

- `kube`: for each cluster, every object of every listable namespaced type in the named namespaces
  (the namespaces themselves too), and the named cluster-scoped objects. An object's fingerprint
  is the SHA-256 of the object without its status and server-kept metadata, so a controller
  updating status is not a change but any spec, data, label or annotation change is.
- `files`: every file under the named paths (content hash, mode, symlink target).
- `registries`: every tag of every repository under the given prefixes, with the digest it points at.
- `dns`: the answers a server gives for (name, type) pairs.
- `commands`: the hash of a command's output (e.g. a daemon's running configuration).

Values are hashes, digests and DNS answers only: no Secret content is printed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# kinds that change without anyone applying anything: events, leader leases, endpoints and the pods
# that controllers and kwok keep moving
VOLATILE_KINDS = {"Event", "Lease", "Endpoints", "EndpointSlice", "Pod", "PodMetrics"}
SERVER_METADATA = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def object_fingerprint(obj: dict[str, Any]) -> str:
    """The object as applied: no status, no metadata the server keeps for itself."""
    body = {k: v for k, v in obj.items() if k != "status"}
    body["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    return digest(body)


def kube_state(scope: dict[str, Any]) -> dict[str, str]:
    from kubernetes import config, dynamic

    api = dynamic.DynamicClient(config.new_client_from_config(scope["kubeconfig"]))
    cluster = scope.get("name", "cluster")
    types = [
        r
        for r in api.resources.search()
        if r.namespaced
        and "list" in (r.verbs or [])
        and r.kind not in VOLATILE_KINDS
        and not r.kind.endswith("List")
        and "/" not in r.name
    ]
    found: dict[str, str] = {}
    for namespace in scope.get("namespaces") or []:
        found.update(namespace_state(api, types, cluster, namespace))
    for item in scope.get("cluster_objects") or []:
        found.update(cluster_objects_state(api, cluster, item))
    return found


def namespace_state(api: Any, types: list[Any], cluster: str, namespace: str) -> dict[str, str]:
    from kubernetes.client.exceptions import ApiException

    ns_api = api.resources.get(api_version="v1", kind="Namespace")
    try:
        ns_obj = ns_api.get(name=namespace).to_dict()
    except ApiException as err:
        if err.status == 404:
            return {f"kube:{cluster}:namespace/{namespace}": "absent"}
        raise
    found = {f"kube:{cluster}:namespace/{namespace}": object_fingerprint(ns_obj)}
    seen: set[tuple[str, str]] = set()
    for resource in types:
        key = (resource.group, resource.kind)
        if key in seen:  # the same kind served by several versions
            continue
        seen.add(key)
        try:
            items = resource.get(namespace=namespace).to_dict().get("items") or []
        except ApiException:
            continue
        for obj in items:
            name = obj["metadata"]["name"]
            found[f"kube:{cluster}:{namespace}/{resource.group or 'core'}/{resource.kind}/{name}"] = object_fingerprint(
                obj
            )
    return found


def cluster_objects_state(api: Any, cluster: str, item: dict[str, Any]) -> dict[str, str]:
    """Named cluster-scoped objects, or every one whose name starts with `prefix`; "absent" when missing."""
    resource = api.resources.get(api_version=item["api_version"], kind=item["kind"])
    items = resource.get().to_dict().get("items") or []
    names = set(item.get("names") or [])
    prefix = item.get("prefix")
    found = {f"kube:{cluster}:{item['kind']}/{name}": "absent" for name in names}
    for obj in items:
        name = obj["metadata"]["name"]
        if name in names or (prefix and name.startswith(prefix)):
            if item["kind"] == "Node":  # the kubelet (kwok) keeps annotating nodes; what we own is labels and taints
                obj = {"labels": obj["metadata"].get("labels"), "taints": (obj.get("spec") or {}).get("taints")}
            found[f"kube:{cluster}:{item['kind']}/{name}"] = object_fingerprint(obj)
    return found


def file_state(path: str, exclude: list[str]) -> dict[str, str]:
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        return {f"file:{path}": "absent"}
    found: dict[str, str] = {}
    for entry in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in exclude):
            continue
        mode = oct(entry.lstat().st_mode & 0o7777)
        if entry.is_symlink():
            value = f"link {os.readlink(entry)}"
        elif entry.is_dir():
            value = f"dir {mode}"
        else:
            value = f"file {mode} {hashlib.sha256(entry.read_bytes()).hexdigest()}"
        found[f"file:{entry}"] = value
    return found


def collection_registry(scope: dict[str, Any]) -> Any:
    """The collection's own registry client, from the collection path molecule gives ansible."""
    for entry in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)
    from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Registry

    return Registry(scope["host"], scope.get("ca_file"), scope.get("username"), scope.get("password"))


def registry_state(scope: dict[str, Any]) -> dict[str, str]:
    registry = collection_registry(scope)
    prefixes = tuple(scope.get("prefixes") or [""])
    repositories = [r for r in registry.list_repositories() if r.startswith(prefixes)]
    found = {
        f"registry:{scope['host']}/{prefix}*": str(sum(r.startswith(prefix) for r in repositories))
        for prefix in prefixes
    }

    def tags_of(repository: str) -> dict[str, str]:
        return {
            f"registry:{scope['host']}/{repository}:{tag}": registry.manifest_digest(repository, tag) or ""
            for tag in registry.list_tags(repository)
        }

    try:
        with ThreadPoolExecutor(8) as pool:
            for result in pool.map(tags_of, repositories):
                found.update(result)
    finally:
        registry.close()
    return found


def dns_state(scope: dict[str, Any]) -> dict[str, str]:
    found = {}
    for name, rtype in scope["queries"]:
        argv = ["dig", f"@{scope['server']}", "-p", str(scope.get("port", 53)), "+short", name, rtype]
        answer = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
        found[f"dns:{scope['server']}:{name}/{rtype}"] = " ".join(sorted(answer.split()))
    return found


def command_state(scope: dict[str, Any]) -> dict[str, str]:
    proc = subprocess.run(
        scope["argv"], input=scope.get("stdin"), capture_output=True, text=True, check=True, timeout=60
    )
    return {f"command:{scope['name']}": hashlib.sha256(proc.stdout.encode()).hexdigest()}


def lab_state(scope: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for cluster in scope.get("kube") or []:
        found.update(kube_state(cluster))
    for path in scope.get("files") or []:
        found.update(file_state(path, scope.get("files_exclude") or []))
    for registry in scope.get("registries") or []:
        found.update(registry_state(registry))
    for server in scope.get("dns") or []:
        found.update(dns_state(server))
    for command in scope.get("commands") or []:
        found.update(command_state(command))
    return found


def main() -> int:
    json.dump(lab_state(json.load(sys.stdin)), sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
