# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A namespaced ServiceAccount with RBAC and a long-lived or bounded token (module `remote_cluster_sa`).

The objects are managed through the plain REST paths of the API server so that check mode can use the
server's dry run for every write, and the diff shows exactly the fields this module owns.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.airgap.renku.plugins.module_utils.common.files import write_atomic

MANAGED_BY = {"app.kubernetes.io/managed-by": "airgap.renku"}
MASK = "<masked>"
# how long a deleted namespace may take to go (its content is removed first, then the finalizer)
NAMESPACE_GONE_SECONDS = 120.0

# The Renku data-service rules for a remote session cluster (reference: renku-remote-role-rules.yaml,
# the union of the Renku remote-cluster documentation and the chart 2.19.3 data-service Role).
DEFAULT_RULES: list[dict[str, list[str]]] = [
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/log", "services", "endpoints", "secrets", "persistentvolumeclaims"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["get", "list", "watch", "create", "update", "delete", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["delete"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list", "watch", "patch"]},
    {
        "apiGroups": [""],
        "resources": ["secrets", "persistentvolumeclaims"],
        "verbs": ["create", "update", "delete", "patch"],
    },
    {
        "apiGroups": ["amalthea.dev"],
        "resources": ["amaltheasessions"],
        "verbs": ["create", "update", "delete", "patch", "list", "get", "watch"],
    },
    {
        "apiGroups": [""],
        "resources": ["resourcequotas"],
        "verbs": ["create", "update", "delete", "patch", "list", "get", "watch"],
    },
]
# Added when Renku image builders (shipwright) run sessions' builds on the remote cluster.
IMAGE_BUILDER_RULES: list[dict[str, list[str]]] = [
    {
        "apiGroups": ["shipwright.io"],
        "resources": ["buildruns"],
        "verbs": ["create", "update", "delete", "patch", "list", "get", "watch"],
    }
]

TOKEN_MIN_SECONDS = 600  # the API server refuses shorter TokenRequests
TOKEN_MAX_SECONDS = 366 * 24 * 3600

_RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
_PATHS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Role": _RBAC + "/roles",
    "RoleBinding": _RBAC + "/rolebindings",
}


class ServiceAccountError(Exception):
    """The request cannot be carried out; the message names the field or the cause."""


@dataclass
class SaSpec:
    """What the caller asked for."""

    namespace: str
    name: str
    rules: list[dict[str, Any]] | None = None
    cluster_role: str | None = None
    role_name: str | None = None
    binding_name: str | None = None
    secret_name: str | None = None
    token_mode: str = "secret"
    token_duration: int = 3600
    token_timeout: int = 60
    create_namespace: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.role_name or self.name

    @property
    def binding(self) -> str:
        return self.binding_name or self.name

    @property
    def secret(self) -> str:
        return self.secret_name or f"{self.name}-token"


def validate_spec(spec: SaSpec) -> None:
    """Refuse contradictory or out-of-range input before any API call."""
    if spec.rules is not None and spec.cluster_role:
        raise ServiceAccountError("set either 'rules' (a Role is created) or 'cluster_role' (bound as is), not both")
    if spec.token_mode == "request" and not TOKEN_MIN_SECONDS <= spec.token_duration <= TOKEN_MAX_SECONDS:
        raise ServiceAccountError(
            f"token_duration must be between {TOKEN_MIN_SECONDS} and {TOKEN_MAX_SECONDS} seconds, "
            f"got {spec.token_duration}"
        )
    if spec.token_timeout <= 0:
        raise ServiceAccountError("token_timeout must be a positive number of seconds")
    for i, rule in enumerate(spec.rules or []):
        if not rule.get("verbs") or not (rule.get("resources") or rule.get("nonResourceURLs")):
            raise ServiceAccountError(f"rules[{i}] needs 'verbs' and 'resources' (with 'apiGroups')")


def effective_rules(spec: SaSpec) -> list[dict[str, Any]] | None:
    if spec.cluster_role:
        return None
    return copy.deepcopy(spec.rules if spec.rules is not None else DEFAULT_RULES)


def desired_objects(spec: SaSpec) -> list[dict[str, Any]]:
    """The objects in creation order (the token Secret only after its ServiceAccount)."""
    labels = {**spec.labels, **MANAGED_BY}
    meta = {"namespace": spec.namespace, "labels": labels}
    objs: list[dict[str, Any]] = []
    if spec.create_namespace:
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace, "labels": labels}})
    objs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": spec.name, **meta}})
    rules = effective_rules(spec)
    if rules is not None:
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": spec.role, **meta},
                "rules": rules,
            }
        )
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": spec.binding, **meta},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole" if spec.cluster_role else "Role",
                "name": spec.cluster_role or spec.role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": spec.name, "namespace": spec.namespace}],
        }
    )
    if spec.token_mode == "secret":
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/service-account-token",
                "metadata": {
                    "name": spec.secret,
                    **meta,
                    "annotations": {"kubernetes.io/service-account.name": spec.name},
                },
            }
        )
    return objs


def _subset_differs(want: Any, have: Any) -> bool:
    """True when `want` is not contained in `have` (dicts by key, lists and scalars by equality)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return True
        return any(_subset_differs(v, have.get(k)) for k, v in want.items())
    return want != have


def owned_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields this module manages, for comparison and diff."""
    view: dict[str, Any] = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            k: v for k, v in (obj.get("metadata") or {}).items() if k in ("name", "namespace", "labels", "annotations")
        },
    }
    for key in ("rules", "roleRef", "subjects", "type"):
        if key in obj:
            view[key] = obj[key]
    if "data" in obj:
        view["data"] = {k: MASK for k in obj["data"] or {}}
    return view


def needs_update(want: dict[str, Any], have: dict[str, Any]) -> bool:
    wanted = {k: v for k, v in want.items() if k not in ("apiVersion", "kind", "roleRef")}
    return _subset_differs(wanted, have)


def needs_replace(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """Immutable fields differ: roleRef of a RoleBinding, type of a Secret."""
    if want["kind"] == "RoleBinding":
        return want["roleRef"] != have.get("roleRef")
    if want["kind"] == "Secret":
        return want["type"] != have.get("type")
    return False


def token_from_secret(secret: dict[str, Any]) -> tuple[str, str]:
    """(token, CA PEM) of a filled service-account-token Secret; empty strings while unfilled."""
    data = secret.get("data") or {}
    token = base64.b64decode(data["token"]).decode() if data.get("token") else ""
    ca_pem = base64.b64decode(data["ca.crt"]).decode() if data.get("ca.crt") else ""
    return token, ca_pem


def token_forms(token: str) -> set[str]:
    """Every form of a token a result could carry: the token and its base64 (a Secret's `data.token`)."""
    if not token:
        return set()
    return {token, base64.b64encode(token.encode()).decode()}


def token_file_current(path: str, token: str) -> bool:
    """True when `path` holds exactly `token` with mode 0600."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return False
    return content == token and mode == 0o600


def write_token_file(path: str, token: str, check: bool) -> bool:
    """Put `token` into `path` (atomic, mode 0600 from the start); True when it changed or would change."""
    if token_file_current(path, token):
        return False
    if not check:
        write_atomic(path, token, mode=0o600)
    return True


def rest_json(api: Any, method: str, path: str, query: list[tuple[str, str]], body: Any, content_type: str) -> Any:
    """One JSON request through an ApiClient; raises the client's ApiException on a non-2xx status."""
    headers = {"Accept": "application/json", "Content-Type": content_type}
    if hasattr(api, "param_serialize"):  # kubernetes >= 33 (openapi-generator 7 client)
        request = api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            api.response_deserialize(response, {})  # raises the matching ApiException subclass
        return json.loads(response.data or b"null")
    return api.call_api(  # older clients
        path,
        method,
        query_params=query,
        header_params=headers,
        body=body,
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


class KubeRest:
    """Thin JSON REST access over a kubernetes ApiClient (dry run for writes in check mode)."""

    def __init__(self, api_client: Any, dry_run: bool) -> None:
        self.api = api_client
        self.dry_run = dry_run

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None) -> str:
        base = _PATHS[kind].format(ns=namespace)
        return f"{base}/{name}" if name else base

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        query = [("dryRun", "All")] if self.dry_run and method in ("POST", "PATCH", "DELETE", "PUT") else []
        return rest_json(self.api, method, path, query, body, content_type)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", self.path(kind, namespace, name))
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        ns = obj["metadata"].get("namespace", "")
        return self._call("POST", self.path(obj["kind"], ns), obj)

    def merge_patch(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self._call(
            "PATCH",
            self.path(obj["kind"], meta.get("namespace", ""), meta["name"]),
            obj,
            "application/merge-patch+json",
        )

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        try:
            self._call("DELETE", self.path(kind, namespace, name))
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise
        return True

    def token_request(self, namespace: str, name: str, seconds: int) -> dict[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        return self._call("POST", f"{self.path('ServiceAccount', namespace, name)}/token", body)


@dataclass
class Outcome:
    changed: bool = False
    actions: list[str] = field(default_factory=list)
    before: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)


def ensure_object(rest: KubeRest, want: dict[str, Any], outcome: Outcome) -> dict[str, Any] | None:
    """Create, patch or replace one object; records the action and the diff views."""
    meta = want["metadata"]
    have = rest.get(want["kind"], meta.get("namespace", ""), meta["name"])
    ident = f"{want['kind']}/{meta['name']}"
    if have is None:
        outcome.after.append(owned_view(want))
        outcome.actions.append(f"create {ident}")
        outcome.changed = True
        return rest.create(want)
    outcome.before.append(owned_view(have))
    if needs_replace(want, have):
        outcome.after.append(owned_view(want))
        outcome.actions.append(f"replace {ident}")
        outcome.changed = True
        rest.delete(want["kind"], meta.get("namespace", ""), meta["name"])
        return want if rest.dry_run else rest.create(want)
    if want["kind"] == "Namespace":
        # an existing namespace is used as it is; the managed-by label marks only the ones created here
        outcome.after.append(owned_view(have))
        return have
    if needs_update(want, have):
        outcome.actions.append(f"update {ident}")
        outcome.changed = True
        patched = rest.merge_patch(want)
        outcome.after.append(owned_view(patched))
        return patched
    outcome.after.append(owned_view(have))
    return have


def wait_for_token(rest: KubeRest, spec: SaSpec, sleep: float = 0.5) -> tuple[str, str]:
    """Poll the token Secret until the token controller has filled it."""
    deadline = time.monotonic() + spec.token_timeout
    while True:
        secret = rest.get("Secret", spec.namespace, spec.secret)
        if secret is None:
            raise ServiceAccountError(
                f"Secret {spec.namespace}/{spec.secret} disappeared; the token controller deletes a token Secret "
                f"whose ServiceAccount {spec.name!r} does not exist"
            )
        token, ca_pem = token_from_secret(secret)
        if token:
            return token, ca_pem
        if time.monotonic() >= deadline:
            raise ServiceAccountError(
                f"the token controller did not fill Secret {spec.namespace}/{spec.secret} "
                f"within {spec.token_timeout}s; "
                "check that kube-controller-manager runs with --service-account-private-key-file "
                "(or raise token_timeout)"
            )
        time.sleep(sleep)


def root_ca(rest: KubeRest, namespace: str) -> str:
    """The cluster CA the controller manager publishes into every namespace (kube-root-ca.crt)."""
    cm = rest.get("ConfigMap", namespace, "kube-root-ca.crt")
    return ((cm or {}).get("data") or {}).get("ca.crt", "")


def terminating(obj: dict[str, Any] | None) -> bool:
    """A namespace (or any object) that is being deleted: it takes no new content until it is gone."""
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


def wait_namespace_gone(rest: KubeRest, namespace: str, timeout: float = NAMESPACE_GONE_SECONDS) -> None:
    """Wait until a namespace being deleted is gone (its finalizers have run), as `kubectl delete` waits."""
    deadline = time.monotonic() + timeout
    while terminating(rest.get("Namespace", "", namespace)):
        if time.monotonic() >= deadline:
            raise ServiceAccountError(
                f"namespace {namespace} is still being deleted (Terminating) after {timeout:.0f}s: the namespace "
                "controller has not finished removing its content; wait until it is gone, then run again"
            )
        time.sleep(0.5)


def _namespace_terminating(rest: KubeRest, spec: SaSpec) -> bool:
    """Whether the namespace is still being deleted; a real run waits until it is gone (then it is not)."""
    if not terminating(rest.get("Namespace", "", spec.namespace)):
        return False
    if not spec.create_namespace:
        raise ServiceAccountError(
            f"namespace {spec.namespace} is being deleted (Terminating) and create_namespace is false, so "
            "nothing can be made in it; set create_namespace: true, or create the namespace again once it is gone"
        )
    if rest.dry_run:
        return True
    wait_namespace_gone(rest, spec.namespace)
    return False


def ensure_present(rest: KubeRest, spec: SaSpec) -> tuple[Outcome, dict[str, Any]]:
    """Create or update every object, then obtain the token; returns the outcome and the credentials.

    A namespace still being deleted takes no new content: a real run waits until it is gone and creates it again;
    a check run reports it as created (the server cannot dry-run anything inside it)."""
    outcome = Outcome()
    namespace_pending = _namespace_terminating(rest, spec)
    for want in desired_objects(spec):
        if rest.dry_run and (namespace_pending or f"create Namespace/{spec.namespace}" in outcome.actions):
            # a dry-run namespace holds nothing, so the server cannot dry-run objects inside it
            outcome.after.append(owned_view(want))
            outcome.actions.append(f"create {want['kind']}/{want['metadata']['name']}")
            outcome.changed = True
            continue
        ensure_object(rest, want, outcome)
    creds: dict[str, Any] = {"token": "", "ca_pem": "", "expiration": None}
    if rest.dry_run and outcome.changed:
        return outcome, creds  # nothing was really written, so there is no token to read yet
    if spec.token_mode == "secret":
        creds["token"], creds["ca_pem"] = wait_for_token(rest, spec)
    else:
        status = rest.token_request(spec.namespace, spec.name, spec.token_duration).get("status") or {}
        creds["token"] = status.get("token", "")
        creds["expiration"] = status.get("expirationTimestamp")
        creds["ca_pem"] = root_ca(rest, spec.namespace)
    return outcome, creds


def ensure_absent(rest: KubeRest, spec: SaSpec) -> Outcome:
    """Delete what `ensure_present` makes, in reverse order; the namespace only if this collection created it."""
    outcome = Outcome()
    for want in reversed(desired_objects(spec)):
        meta = want["metadata"]
        have = rest.get(want["kind"], meta.get("namespace", ""), meta["name"])
        if have is None:
            continue
        labels = (have.get("metadata") or {}).get("labels") or {}
        if (
            want["kind"] == "Namespace"
            and labels.get("app.kubernetes.io/managed-by") != MANAGED_BY["app.kubernetes.io/managed-by"]
        ):
            continue
        outcome.before.append(owned_view(have))
        rest.delete(want["kind"], meta.get("namespace", ""), meta["name"])
        outcome.actions.append(f"delete {want['kind']}/{meta['name']}")
        outcome.changed = True
        if want["kind"] == "Namespace" and not rest.dry_run:
            wait_namespace_gone(rest, meta["name"])
    return outcome
