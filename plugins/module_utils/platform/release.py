# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a rendered chart as a release: hooks in Helm's order, server-side apply, prune, keep secrets.

What `helm upgrade` does, minus what breaks an air-gapped site with a private CA:

- every document, hooks included, is applied as given (so `ca_inject` reaches hooks and Jobs,
  which a Helm 3 post-renderer never sees);
- objects are applied server-side with one field manager, so re-applying an unchanged document
  writes nothing (resourceVersion stays) and the run reports changed only when something changed;
- a Secret the cluster already has is never re-applied (charts that generate passwords or CAs with
  `randAlphaNum`/`lookup` would rotate them on every offline render), unless it carries the
  `airgap.renku/always-apply: "true"` annotation (the CA bundle objects);
- hooks run, in Helm's order (weight, kind, name), only when the rendered release changed;
- nulls where Kubernetes expects strings (a Secret's `KEY:` with no value, a blank annotation) are
  sent as "", which is how Kubernetes decodes them: server-side apply would read a null as "remove";
- objects rendered by an earlier run and not by this one are deleted (prune), using the inventory
  kept in a release record ConfigMap and the release label on each object.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import (
    annotations_of,
    map_field,
    metadata_of,
)
from ansible_collections.airgap.renku.plugins.module_utils.common.secrets import public_strings, secret_values
from ansible_collections.airgap.renku.plugins.module_utils.platform.generated import stabilise

RELEASE_LABEL = "airgap.renku/release"
ALWAYS_APPLY_ANNOTATION = "airgap.renku/always-apply"
RECORD_PREFIX = "airgap-release-"
HOOK_ANNOTATION = "helm.sh/hook"
RUN_EVENTS = {"install": ("pre-install", "post-install"), "upgrade": ("pre-upgrade", "post-upgrade")}
# maps whose values Kubernetes decodes as strings (a null value is "")
STRING_MAPS = {"Secret": ("data", "stringData"), "ConfigMap": ("data", "binaryData")}

# Helm's install order of kinds (pkg/release/util/kind_sorter.go); unknown kinds go last.
INSTALL_ORDER = [
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
]


class ReleaseError(Exception):
    """The release cannot be applied; the message says which object and why."""


@dataclass
class Hook:
    document: dict
    events: tuple[str, ...]
    weight: int
    delete_policies: tuple[str, ...]


@dataclass
class Outcome:
    changed: bool = False
    applied: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept_secrets: list[str] = field(default_factory=list)
    hooks_run: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    diffs: list[dict] = field(default_factory=list)
    phase: str = "install"

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "phase": self.phase,
            "created": self.created,
            "updated": self.updated,
            "kept_secrets": self.kept_secrets,
            "hooks_run": self.hooks_run,
            "pruned": self.pruned,
        }


# --------------------------------------------------------------------------------------------------
# pure parts


def install_rank(kind: str) -> int:
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def object_key(document: dict) -> str:
    meta = metadata_of(document)
    namespace = meta.get("namespace") or ""
    return f"{document.get('apiVersion')}/{document.get('kind')}/{namespace}/{meta.get('name')}"


def split_hooks(documents: list[dict]) -> tuple[list[dict], list[Hook]]:
    """Regular documents and hooks; test, delete and rollback hooks are dropped (not part of a deploy)."""
    regular: list[dict] = []
    hooks: list[Hook] = []
    for document in documents:
        annotations = annotations_of(document)
        if HOOK_ANNOTATION not in annotations:
            regular.append(document)
            continue
        events = _comma_list(annotations[HOOK_ANNOTATION])
        try:
            weight = int(annotations.get("helm.sh/hook-weight") or "0")
        except ValueError as exc:
            raise ReleaseError(f"{object_key(document)}: helm.sh/hook-weight must be an integer") from exc
        policies = _comma_list(annotations.get("helm.sh/hook-delete-policy"))
        hooks.append(Hook(document, events, weight, policies or ("before-hook-creation",)))
    return regular, hooks


def _comma_list(value: Any) -> tuple[str, ...]:
    """`a, b` -> ("a", "b"); a null annotation value is ""."""
    return tuple(part.strip() for part in str(value or "").split(",") if part.strip())


def hooks_for(hooks: list[Hook], event: str) -> list[Hook]:
    """Hooks of one event in Helm's order: weight, then kind install order, then name."""
    chosen = [h for h in hooks if event in h.events]
    return sorted(
        chosen,
        key=lambda h: (h.weight, install_rank(h.document.get("kind") or ""), metadata_of(h.document).get("name") or ""),
    )


def sort_for_install(documents: list[dict]) -> list[dict]:
    return sorted(documents, key=lambda d: (install_rank(d.get("kind") or ""), object_key(d)))


def release_digest(documents: list[dict]) -> str:
    """Digest of what the release renders; Secret values are left out because charts regenerate them."""
    hasher = hashlib.sha256()
    for document in sorted((d for d in documents if isinstance(d, dict)), key=object_key):
        shown = document
        if document.get("kind") == "Secret" and not _always_apply(document):
            shown = {
                **document,
                "data": sorted(document.get("data") or {}),
                "stringData": sorted(document.get("stringData") or {}),
            }
        hasher.update(json.dumps(shown, sort_keys=True, default=str).encode())
    return hasher.hexdigest()


def label_for_release(document: dict, release: str, namespace: str, namespaced: bool) -> dict:
    """The body to apply: a copy with nulls as Kubernetes reads them, namespace and release label set."""
    doc = null_strings_as_empty(copy.deepcopy(document))
    meta = map_field(doc, "metadata")
    if namespaced and not meta.get("namespace"):
        meta["namespace"] = namespace
    if not namespaced:
        meta.pop("namespace", None)
    map_field(meta, "labels")[RELEASE_LABEL] = release
    return doc


def null_strings_as_empty(document: dict) -> dict:
    """Edit `document` in place so server-side apply reads it as Kubernetes reads the YAML; returns it.

    A null value in a string map (labels, annotations, Secret data/stringData, ConfigMap data/binaryData)
    becomes "", and a null map itself is dropped (Kubernetes reads it as empty; applying null would mean
    "remove").
    """
    meta = document.get("metadata")
    if isinstance(meta, dict):
        _fill_string_map(meta, "labels")
        _fill_string_map(meta, "annotations")
    for key in STRING_MAPS.get(document.get("kind") or "", ()):
        _fill_string_map(document, key)
    return document


def _fill_string_map(obj: dict, key: str) -> None:
    if key in obj and obj[key] is None:
        del obj[key]
    elif isinstance(obj.get(key), dict):
        obj[key] = {k: "" if v is None else v for k, v in obj[key].items()}


def apply_body(document: dict) -> bytes:
    """The apply request body, serialised here: the client's own JSON escapes characters outside the BMP as
    surrogate pairs (an emoji in Renku's UI messages becomes `\\ud83d\\udc38`), which the API server's YAML
    decoder refuses ("invalid Unicode character escape code"); UTF-8 as it is is valid YAML and JSON."""
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _always_apply(document: dict) -> bool:
    return annotations_of(document).get(ALWAYS_APPLY_ANNOTATION) == "true"


def normalise(obj: dict | None) -> dict | None:
    """An object without server bookkeeping, for before/after comparison."""
    if obj is None:
        return None
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    meta = clean.get("metadata") or {}
    for key in ("resourceVersion", "generation", "managedFields", "creationTimestamp", "uid"):
        meta.pop(key, None)
    return clean


def masked(obj: dict | None) -> dict | None:
    """Secret values hidden; long ConfigMap values (CA bundles) shortened to their size and digest."""
    if obj is None or obj.get("kind") not in ("Secret", "ConfigMap"):
        return obj
    shown = copy.deepcopy(obj)
    for key in ("data", "stringData", "binaryData"):
        if key not in shown:
            continue
        values = shown[key] or {}
        if obj["kind"] == "Secret":
            shown[key] = {k: "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" for k in values}
        else:
            shown[key] = {k: _shorten("" if v is None else str(v)) for k, v in values.items()}
    return shown


def _shorten(value: str) -> str:
    if len(value) <= 2048:
        return value
    return f"<{len(value)} bytes, sha256 {hashlib.sha256(value.encode()).hexdigest()[:16]}>"


# --------------------------------------------------------------------------------------------------
# the cluster side


class ReleaseApplier:
    """Applies one release with a DynamicClient; `check` uses server dry-run and runs no hooks."""

    def __init__(
        self,
        dynamic: Any,
        release: str,
        namespace: str,
        field_manager: str,
        check: bool = False,
        want_diff: bool = False,
        hook_timeout: int = 300,
        wait_hooks: bool = True,
        keep_existing_secrets: bool = True,
        prune: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dyn = dynamic
        self.release = release
        self.namespace = namespace
        self.field_manager = field_manager
        self.check = check
        self.want_diff = want_diff
        self.hook_timeout = hook_timeout
        self.wait_hooks = wait_hooks
        self.keep_existing_secrets = keep_existing_secrets
        self.prune_enabled = prune
        self.sleep = sleep
        self.outcome = Outcome()
        self.secret_values: set[str] = set()  # every Secret value read or written, for the caller to mask
        self._public: set[str] = set()
        self._resources: dict[tuple[str, str], Any] = {}
        self._missing_namespaces: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            from kubernetes.dynamic.exceptions import ResourceNotFoundError

            try:
                self._resources[key] = self.dyn.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise ReleaseError(
                    f"the API server does not serve {kind} in {api_version}; install its CRD first"
                ) from exc
        return self._resources[key]

    def get(self, resource: Any, name: str, namespace: str | None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def prepare(self, document: dict) -> tuple[Any, dict]:
        if (
            not document.get("apiVersion")
            or not document.get("kind")
            or not (document.get("metadata") or {}).get("name")
        ):
            raise ReleaseError(f"a document lacks apiVersion, kind or metadata.name: {str(document)[:200]}")
        resource = self.resource(document["apiVersion"], document["kind"])
        return resource, label_for_release(document, self.release, self.namespace, resource.namespaced)

    def apply(self, document: dict, keep_secret: bool = True) -> dict | None:
        """Server-side apply one document; returns the live object (None when kept or dry-run create)."""
        resource, body = self.prepare(document)
        meta = body["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        key = object_key(body)
        if namespace in self._missing_namespaces:  # check mode: the namespace would be created first
            self.outcome.created.append(key)
            self._changed(key, None, body)
            return None
        before = self.get(resource, name, namespace)
        self.secret_values.update(secret_values([body] + ([before] if before else []), self._public))
        owner = ((before or {}).get("metadata", {}).get("labels") or {}).get(RELEASE_LABEL)
        if not resource.namespaced and owner and owner != self.release:
            # a cluster-wide object two releases render alike (Renku's AmaltheaSession CRD): the release that
            # created it keeps it, so neither flips its label back and forth nor prunes it from under the other
            meta["labels"][RELEASE_LABEL] = owner
        if (
            keep_secret
            and before is not None
            and body["kind"] == "Secret"
            and self.keep_existing_secrets
            and not _always_apply(body)
        ):
            self.outcome.kept_secrets.append(key)
            return before
        from kubernetes.dynamic.exceptions import DynamicApiError

        try:
            after = self.dyn.server_side_apply(
                resource,
                body=apply_body(body),
                name=name,
                namespace=namespace,
                field_manager=self.field_manager,
                force_conflicts=True,
                dry_run="All" if self.check else None,
            ).to_dict()
        except DynamicApiError as exc:
            raise ReleaseError(f"{key}: the API server refused it: {exc.summary()}") from exc
        self.outcome.applied.append(key)
        if before is None:
            self.outcome.created.append(key)
            self._changed(key, None, after)
        # not the resourceVersion: controllers write status between the read and the apply (a Deployment rolling
        # out after a restart), which is no change of ours
        elif normalise(before) != normalise(after):
            self.outcome.updated.append(key)
            self._changed(key, before, after)
        return after

    def _changed(self, key: str, before: dict | None, after: dict | None) -> None:
        self.outcome.changed = True
        if self.want_diff:
            self.outcome.diffs.append(
                {
                    "before_header": key,
                    "after_header": key,
                    "before": json.dumps(masked(normalise(before)), indent=2, sort_keys=True) + "\n" if before else "",
                    "after": json.dumps(masked(normalise(after)), indent=2, sort_keys=True) + "\n" if after else "",
                }
            )

    def delete(self, document: dict, wait: bool = True) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource, body = self.prepare(document)
        name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
        if self.get(resource, name, namespace) is None:
            return False
        self.outcome.changed = True
        if self.check:
            return True
        try:
            resource.delete(name=name, namespace=namespace, propagation_policy="Background")
        except NotFoundError:
            return True
        deadline = time.monotonic() + self.hook_timeout
        while wait and self.get(resource, name, namespace) is not None:
            if time.monotonic() > deadline:
                raise ReleaseError(f"{object_key(body)}: still present {self.hook_timeout}s after deletion")
            self.sleep(0.5)
        return True

    # -- namespaces, hooks, prune, record ----------------------------------------------------------

    def ensure_namespaces(self, documents: list[dict]) -> None:
        wanted = {self.namespace}
        for document in documents:
            body = self.prepare(document)[1]
            if body["metadata"].get("namespace"):
                wanted.add(body["metadata"]["namespace"])
        resource = self.resource("v1", "Namespace")
        for name in sorted(wanted):
            if self.get(resource, name, None) is not None:
                continue
            if self.check:
                self._missing_namespaces.add(name)
                self.outcome.created.append(f"v1/Namespace//{name}")
                self.outcome.changed = True
            else:
                self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def run_hook(self, hook: Hook) -> None:
        key = object_key(self.prepare(hook.document)[1])
        self.outcome.hooks_run.append(key)
        self.outcome.changed = True
        if self.check:
            return
        if "before-hook-creation" in hook.delete_policies:
            self.delete(hook.document)
        live = self.apply(hook.document, keep_secret=False)
        succeeded = self.wait_hook(hook.document, live) if self.wait_hooks else True
        if succeeded and "hook-succeeded" in hook.delete_policies:
            self.delete(hook.document, wait=False)
        if not succeeded:
            if "hook-failed" in hook.delete_policies:
                self.delete(hook.document, wait=False)
            raise ReleaseError(f"hook {key} failed; see `kubectl describe` of it and its pods")

    def wait_hook(self, document: dict, live: dict | None) -> bool:
        """Jobs until Complete/Failed, Pods until Succeeded/Failed; other kinds are done once applied."""
        kind = document.get("kind")
        if kind not in ("Job", "Pod") or live is None:
            return True
        resource, body = self.prepare(document)
        name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
        deadline = time.monotonic() + self.hook_timeout
        while time.monotonic() < deadline:
            obj = self.get(resource, name, namespace) or {}
            status = obj.get("status") or {}
            if kind == "Pod" and status.get("phase") in ("Succeeded", "Failed"):
                return status["phase"] == "Succeeded"
            for condition in status.get("conditions") or []:
                if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
                    return condition["type"] == "Complete"
            self.sleep(1)
        raise ReleaseError(
            f"hook {object_key(body)} did not finish within {self.hook_timeout}s; are nodes able to run pods?"
        )

    def record_name(self) -> str:
        return f"{RECORD_PREFIX}{self.release}"[:253]

    def read_record(self) -> dict | None:
        if self.namespace in self._missing_namespaces:
            return None
        live = self.get(self.resource("v1", "ConfigMap"), self.record_name(), self.namespace)
        return (live or {}).get("data") if live else None

    def write_record(self, digest: str, inventory: list[str], names: dict[str, str] | None = None) -> None:
        data = {"release": self.release, "digest": digest, "inventory": json.dumps(sorted(inventory))}
        if names:
            data["generated_names"] = json.dumps(names, sort_keys=True)
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.record_name(), "namespace": self.namespace},
                "data": data,
            }
        )

    def prune(self, previous: list[str], current: list[str]) -> None:
        gone = sorted(set(previous) - set(current), key=lambda k: -install_rank(k.split("/")[-3]))
        for key in gone:
            *api_parts, kind, namespace, name = key.split("/")
            document = {"apiVersion": "/".join(api_parts), "kind": kind, "metadata": {"name": name}}
            if namespace:
                document["metadata"]["namespace"] = namespace
            try:
                resource, body = self.prepare(document)
            except ReleaseError:
                continue  # the kind is gone with its CRD, and so are its objects
            live = self.get(resource, name, body["metadata"].get("namespace"))
            if live is None or (metadata_of(live).get("labels") or {}).get(RELEASE_LABEL) != self.release:
                continue  # someone else owns it now
            self.delete(document, wait=False)
            self.outcome.pruned.append(key)

    # -- the whole release -------------------------------------------------------------------------

    def live_of(self, document: dict) -> dict | None:
        """The live object a document stands for, or None (also when its kind is not served yet)."""
        if self.namespace in self._missing_namespaces:
            return None
        try:
            resource, body = self.prepare(document)
        except ReleaseError:
            return None
        return self.get(resource, body["metadata"]["name"], body["metadata"].get("namespace"))

    def run(self, documents: list[dict], generated: list[dict] | None = None) -> Outcome:
        documents = [d for d in documents if isinstance(d, dict) and d]
        record = self.read_record()
        names: dict[str, str] = {}
        if generated:
            # random names and values the chart generates keep what the running release has
            kept = json.loads((record or {}).get("generated_names") or "{}")
            documents, names = stabilise(documents, generated, kept, self.namespace, self.live_of)
        self._public = public_strings(documents)
        self.secret_values.update(secret_values(documents, self._public))
        regular, hooks = split_hooks(documents)
        phase = "upgrade" if record else "install"
        self.outcome.phase = phase
        digest = release_digest(documents)
        render_changed = not record or record.get("digest") != digest
        self.ensure_namespaces(documents)
        pre, post = RUN_EVENTS[phase]
        # the CA bundle objects go first: pre-install hooks mount them
        ordered = sorted(sort_for_install(regular), key=lambda d: not _always_apply(d))
        inventory = [object_key(self.prepare(d)[1]) for d in ordered]
        first = [d for d in ordered if _always_apply(d)]
        for document in first:
            self.apply(document)
        if render_changed:
            for hook in hooks_for(hooks, pre):
                self.run_hook(hook)
        for document in ordered[len(first) :]:
            self.apply(document)
        if render_changed:
            for hook in hooks_for(hooks, post):
                self.run_hook(hook)
        if record and self.prune_enabled:
            self.prune(json.loads(record.get("inventory") or "[]"), inventory)
        if not self.check:
            self.write_record(digest, inventory, names)
        return self.outcome
