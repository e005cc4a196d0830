# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client of the Renku data-service "compute resource control" API: remote clusters and resource pools.

The validation rules mirror the API contract of renku-data-services v0.79.0 (the unit tests compare
these constants with the published OpenAPI spec and validate built payloads against it), plus the
rules Renku's remote-cluster documentation adds. Payloads are checked before any call, so a bad
inventory fails with the field name instead of a 422 halfway through.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# from the OpenAPI spec (components.schemas)
NAME_MIN_LENGTH = 5  # Name
CONFIG_NAME_PATTERN = r"^[a-zA-Z0-9._-]+[.]yaml$"  # ConfigName
HOST_PATTERN = r"^([0-9a-zA-Z:_-]+[.])*[0-9a-zA-Z:_-]+$"  # Host
HOST_MAX_LENGTH = 256
PORT_MAX = 65536
K8S_RESOURCE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*[a-z0-9]$"  # K8sResourceName
K8S_LABEL_PATTERN = r"^[a-z0-9A-Z][a-z0-9A-Z-_./]*[a-z0-9A-Z]$"  # K8sLabel
K8S_LABEL_MAX_LENGTH = 63
PROTOCOLS = ("http", "https")
PLATFORMS = ("linux/amd64", "linux/arm64")
STRING_MAX_LENGTH = 256  # TlsSecretName, StorageClassName, IngressClassName

CLUSTER_FIELDS = (
    "name",
    "config_name",
    "session_protocol",
    "session_host",
    "session_port",
    "session_path",
    "session_ingress_class_name",
    "session_ingress_annotations",
    "session_tls_secret_name",
    "session_storage_class",
    "service_account_name",
    "session_ingress_use_default_cluster_tls_cert",
)
CLASS_FIELDS = (
    "name",
    "default",
    "cpu",
    "memory",
    "gpu",
    "max_storage",
    "default_storage",
    "tolerations",
    "node_affinities",
    "quota_enforced",
)
POOL_FIELDS = ("name", "public", "default", "idle_threshold", "hibernation_threshold", "platform")
QUOTA_FIELDS = ("cpu", "memory", "gpu")
DEFAULT_TLS_FLAG = "session_ingress_use_default_cluster_tls_cert"
ADMIN_ROLE = "renku-admin"  # the realm role renku-data-services treats as admin


class CrcError(Exception):
    """Invalid input or an API failure; the message names the field or the call."""


# --------------------------------------------------------------------------------------------------
# validation (no I/O)


def _name(value: Any, where: str) -> list[str]:
    if not isinstance(value, str) or len(value) < NAME_MIN_LENGTH:
        return [f"{where} must be a string of at least {NAME_MIN_LENGTH} characters, got {value!r}"]
    return []


def _positive(value: Any, where: str, integer: bool) -> list[str]:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        return [f"{where} must be a positive {'integer' if integer else 'number'}, got {value!r}"]
    return []


def _non_negative_int(value: Any, where: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [f"{where} must be an integer >= 0, got {value!r}"]
    return []


def validate_cluster(cluster: dict[str, Any], where: str = "cluster") -> list[str]:
    """Every problem with a cluster payload, each naming its field."""
    errors = _name(cluster.get("name"), f"{where}.name")
    config_name = cluster.get("config_name")
    if not isinstance(config_name, str) or not re.match(CONFIG_NAME_PATTERN, config_name):
        errors.append(f"{where}.config_name must match {CONFIG_NAME_PATTERN} (e.g. remote-a.yaml), got {config_name!r}")
    protocol = cluster.get("session_protocol")
    if protocol not in PROTOCOLS:
        errors.append(f"{where}.session_protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    host = cluster.get("session_host")
    if not isinstance(host, str) or len(host) > HOST_MAX_LENGTH or not re.match(HOST_PATTERN, host):
        errors.append(f"{where}.session_host must be a host name (pattern {HOST_PATTERN}), got {host!r}")
    port = cluster.get("session_port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= PORT_MAX:
        errors.append(f"{where}.session_port must be an integer 0..{PORT_MAX}, got {port!r}")
    if not isinstance(cluster.get("session_path"), str):
        errors.append(f"{where}.session_path must be a string such as '/sessions'")
    if not isinstance(cluster.get("session_ingress_annotations", {}), dict):
        errors.append(f"{where}.session_ingress_annotations must be a mapping")
    for key in ("session_ingress_class_name", "session_tls_secret_name", "session_storage_class"):
        value = cluster.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > STRING_MAX_LENGTH):
            errors.append(f"{where}.{key} must be a string of at most {STRING_MAX_LENGTH} characters")
    sa = cluster.get("service_account_name")
    if sa is not None and (not isinstance(sa, str) or len(sa) > 63 or not re.match(K8S_RESOURCE_NAME_PATTERN, sa)):
        errors.append(f"{where}.service_account_name must match {K8S_RESOURCE_NAME_PATTERN}, got {sa!r}")
    if protocol == "https":
        has_secret = bool(cluster.get("session_tls_secret_name"))
        use_default = bool(cluster.get(DEFAULT_TLS_FLAG))
        if has_secret == use_default:
            errors.append(
                f"{where}: with session_protocol https set exactly one of session_tls_secret_name and "
                f"{DEFAULT_TLS_FLAG}: true ({'both' if has_secret else 'neither'} given)"
            )
    return errors


def _validate_class(cls: dict[str, Any], where: str) -> list[str]:
    errors = _name(cls.get("name"), f"{where}.name")
    errors += _positive(cls.get("cpu"), f"{where}.cpu", integer=False)
    errors += _positive(cls.get("memory"), f"{where}.memory", integer=True)
    errors += _non_negative_int(cls.get("gpu", 0), f"{where}.gpu")
    errors += _positive(cls.get("max_storage"), f"{where}.max_storage", integer=True)
    errors += _positive(cls.get("default_storage"), f"{where}.default_storage", integer=True)
    if not errors and cls["default_storage"] > cls["max_storage"]:
        errors.append(f"{where}.default_storage ({cls['default_storage']}) exceeds max_storage ({cls['max_storage']})")
    for i, label in enumerate(cls.get("tolerations") or []):
        if (
            not isinstance(label, str)
            or not 3 <= len(label) <= K8S_LABEL_MAX_LENGTH
            or not re.match(K8S_LABEL_PATTERN, label)
        ):
            errors.append(f"{where}.tolerations[{i}] must be a Kubernetes label key, got {label!r}")
    for i, aff in enumerate(cls.get("node_affinities") or []):
        key = aff.get("key") if isinstance(aff, dict) else None
        if not isinstance(key, str) or not re.match(K8S_LABEL_PATTERN, key):
            errors.append(f"{where}.node_affinities[{i}].key must be a Kubernetes label key, got {key!r}")
    return errors


def validate_pool(pool: dict[str, Any], where: str = "resource_pool") -> list[str]:
    """Every problem with a resource pool for a remote cluster, each naming its field."""
    errors = _name(pool.get("name"), f"{where}.name")
    if pool.get("public"):
        errors.append(
            f"{where}.public must be false: a pool on a remote cluster is granted to users explicitly, "
            "never open to everyone"
        )
    if pool.get("platform") is not None and pool["platform"] not in PLATFORMS:
        errors.append(f"{where}.platform must be one of {', '.join(PLATFORMS)}")
    quota = pool.get("quota")
    if not isinstance(quota, dict):
        errors.append(f"{where}.quota is required (cpu, memory, gpu and id = the PriorityClass name)")
        quota = {}
    else:
        errors += _positive(quota.get("cpu"), f"{where}.quota.cpu", integer=False)
        errors += _positive(quota.get("memory"), f"{where}.quota.memory", integer=True)
        errors += _non_negative_int(quota.get("gpu", 0), f"{where}.quota.gpu")
        errors += _name(quota.get("id"), f"{where}.quota.id")
        if isinstance(quota.get("id"), str) and not re.match(K8S_RESOURCE_NAME_PATTERN, quota["id"]):
            errors.append(f"{where}.quota.id is the PriorityClass name and must match {K8S_RESOURCE_NAME_PATTERN}")
    classes = pool.get("classes") or []
    if not classes:
        errors.append(f"{where}.classes must list at least one resource class")
    names = [c.get("name") for c in classes]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"{where}.classes: the name {dup!r} is used twice")
    defaults = [c.get("name") for c in classes if c.get("default")]
    if classes and len(defaults) != 1:
        errors.append(
            f"{where}.classes must have exactly one class with default: true, found {len(defaults)}"
            + (f" ({', '.join(map(str, defaults))})" if defaults else "")
        )
    for i, cls in enumerate(classes):
        cls_errors = _validate_class(cls, f"{where}.classes[{i}]")
        errors += cls_errors
        if cls_errors or not quota:
            continue
        for res in QUOTA_FIELDS:
            limit = quota.get(res, 0)
            if isinstance(limit, (int, float)) and cls.get(res, 0) > limit:
                errors.append(
                    f"{where}.classes[{i}].{res} ({cls.get(res)}) exceeds the pool quota.{res} ({limit}); "
                    "a session of this class could never start"
                )
    return errors


# --------------------------------------------------------------------------------------------------
# payloads and comparison


def cluster_payload(cluster: dict[str, Any]) -> dict[str, Any]:
    """The POST /clusters body: only fields with a value.

    With the ingress controller's default certificate, `session_tls_secret_name` is sent as "" (Renku's
    remote-cluster documentation: otherwise the API call fails).
    """
    out = {k: cluster[k] for k in CLUSTER_FIELDS if cluster.get(k) is not None}
    out.setdefault("session_ingress_annotations", {})
    if out.get(DEFAULT_TLS_FLAG):
        out["session_tls_secret_name"] = ""
    return out


def cluster_patch(want: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
    """ClusterPatch body for the fields that differ ('' removes a TLS secret / service account name)."""
    patch: dict[str, Any] = {}
    for key in CLUSTER_FIELDS:
        value = want.get(key)
        if key in ("session_tls_secret_name", "service_account_name") and not value:
            if have.get(key):
                patch[key] = ""
            continue
        if key == DEFAULT_TLS_FLAG:
            value = bool(value)
            if bool(have.get(key)) != value:
                patch[key] = value
            continue
        if value is not None and have.get(key) != value:
            patch[key] = value
    return patch


def class_payload(cls: dict[str, Any]) -> dict[str, Any]:
    out = {k: cls[k] for k in CLASS_FIELDS if cls.get(k) is not None}
    out.setdefault("gpu", 0)
    out.setdefault("default", False)
    return out


def pool_payload(pool: dict[str, Any], cluster_id: str) -> dict[str, Any]:
    out = {k: pool[k] for k in POOL_FIELDS if pool.get(k) is not None}
    out.setdefault("public", False)
    out.setdefault("default", False)
    out["quota"] = {k: pool["quota"][k] for k in (*QUOTA_FIELDS, "id") if pool["quota"].get(k) is not None}
    out["quota"].setdefault("gpu", 0)
    out["classes"] = [class_payload(c) for c in pool["classes"]]
    out["cluster_id"] = cluster_id
    return out


def _differs(want: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in want.items() if have.get(k) != v}


@dataclass
class PoolPlan:
    """How to bring an existing pool to the wanted state."""

    patch: dict[str, Any] = field(default_factory=dict)
    class_patches: dict[int, dict[str, Any]] = field(default_factory=dict)
    add_classes: list[dict[str, Any]] = field(default_factory=list)
    remove_class_ids: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.patch or self.class_patches or self.add_classes or self.remove_class_ids)


def plan_pool(want: dict[str, Any], have: dict[str, Any]) -> PoolPlan:
    """PATCH pool fields, PATCH changed classes (matched by name), POST new ones, DELETE dropped ones.

    Classes are patched one by one: the pool PATCH's `classes` items (ResourceClassPatchWithId) add `id` to
    a schema that forbids additional properties, so a strict validator of the published spec rejects them.
    The quota id cannot change.
    """
    plan = PoolPlan()
    quota_have = have.get("quota") or {}
    if quota_have and quota_have.get("id") != want["quota"]["id"]:
        raise CrcError(
            f"resource_pool.quota.id: the pool {want['name']!r} has quota id {quota_have.get('id')!r}; "
            "the id (the PriorityClass name) cannot change in place; remove the pool first (state: absent)"
        )
    plan.patch = _differs({k: v for k, v in want.items() if k in POOL_FIELDS}, have)
    # GET /resource_pools names it `cluster_id`, GET /resource_pools/{id} `cluster.id`
    if ((have.get("cluster") or {}).get("id") or have.get("cluster_id")) != want["cluster_id"]:
        plan.patch["cluster_id"] = want["cluster_id"]
    quota_patch = _differs({k: want["quota"][k] for k in QUOTA_FIELDS}, quota_have)
    if quota_patch:
        plan.patch["quota"] = quota_patch
    have_by_name = {c["name"]: c for c in have.get("classes") or []}
    for cls in want["classes"]:
        existing = have_by_name.get(cls["name"])
        if existing is None:
            plan.add_classes.append(cls)
            continue
        changed = _differs(cls, existing)
        if changed:
            plan.class_patches[existing["id"]] = changed
    wanted_names = {c["name"] for c in want["classes"]}
    plan.remove_class_ids = [c["id"] for c in have.get("classes") or [] if c["name"] not in wanted_names]
    return plan


# --------------------------------------------------------------------------------------------------
# HTTP


def refusal(method: str, path: str, status: int, detail: str) -> str:
    """What a refused token means, with the data-service's own words."""
    try:
        said = json.loads(detail)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        said = detail[:300]
    if status == 403:
        return (
            f"{method} {path}: 403 Forbidden: the data-service accepted the token but refused its user ({said}); "
            f"the user needs the Keycloak realm role {ADMIN_ROLE}"
        )
    return (
        f"{method} {path}: 401 Unauthorized: the data-service refused the token ({said}); "
        "use a current access token issued by Renku's Keycloak realm"
    )


@dataclass
class TokenRequest:
    """A password grant at a Keycloak realm: how an automation obtains a Renku admin's access token."""

    url: str
    realm: str
    client_id: str
    username: str
    password: str
    client_secret: str | None = None
    ca_file: str | None = None

    @property
    def token_url(self) -> str:
        return f"{self.url.rstrip('/')}/realms/{self.realm}/protocol/openid-connect/token"


def fetch_token(request: TokenRequest, timeout: int, open_url: Any) -> str:
    """The access token of `request.username`; CrcError naming the cause when Keycloak refuses."""
    from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
    from ansible.module_utils.six.moves.urllib.parse import urlencode

    form = {"grant_type": "password", "client_id": request.client_id}
    form.update({"username": request.username, "password": request.password, "scope": "openid"})
    if request.client_secret:
        form["client_secret"] = request.client_secret
    where = f"Keycloak {request.token_url} (user {request.username}, client {request.client_id})"
    try:
        resp = open_url(
            request.token_url,
            method="POST",
            data=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            ca_path=request.ca_file,
            validate_certs=True,
            timeout=timeout,
            use_proxy=False,
        )
        body = json.loads(resp.read())
    except HTTPError as exc:
        raw = exc.read().decode(errors="replace") if hasattr(exc, "read") else ""
        try:
            said = json.loads(raw)
            reason = f"{said.get('error')}: {said.get('error_description', '')}"
        except ValueError:
            reason = raw[:300]
        raise CrcError(f"{where} refused the token request: HTTP {exc.code} {reason}") from exc
    except (URLError, OSError, ValueError) as exc:
        raise CrcError(f"{where} is unreachable: {exc}") from exc
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise CrcError(f"{where} answered without an access token")
    return token


class CrcClient:
    """JSON over HTTPS with a bearer token; TLS verified against `ca_file` (or the system store)."""

    def __init__(self, base_url: str, token: str, ca_file: str | None, timeout: int, open_url: Any) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.ca_file = ca_file
        self.timeout = timeout
        self._open_url = open_url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        try:
            resp = self._open_url(
                self.base + path,
                method=method,
                data=data,
                headers=headers,
                ca_path=self.ca_file,
                validate_certs=True,
                timeout=self.timeout,
                use_proxy=False,
            )
            raw = resp.read()
        except HTTPError as exc:
            detail = exc.read().decode(errors="replace") if hasattr(exc, "read") else ""
            if exc.code in (401, 403):
                raise CrcError(refusal(method, path, exc.code, detail)) from exc
            raise CrcError(f"{method} {path}: HTTP {exc.code}: {detail[:600]}") from exc
        except (URLError, OSError) as exc:
            raise CrcError(f"{method} {path}: the data-service at {self.base} is unreachable: {exc}") from exc
        return json.loads(raw) if raw else None

    def find(self, collection: str, name: str) -> dict[str, Any] | None:
        for item in self.call("GET", f"/{collection}") or []:
            if item.get("name") == name:
                return item
        return None


@dataclass
class CrcResult:
    changed: bool = False
    actions: list[str] = field(default_factory=list)
    cluster: dict[str, Any] | None = None
    pool: dict[str, Any] | None = None
    before: dict[str, Any] = field(default_factory=dict)


def ensure_cluster(client: CrcClient, want: dict[str, Any], check: bool, result: CrcResult) -> dict[str, Any]:
    """Create or patch the cluster; handle the v0.79.0 quirk (POST ignores the default-TLS flag)."""
    have = client.find("clusters", want["name"])
    result.before["cluster"] = have
    payload = cluster_payload(want)
    if have is None:
        result.changed = True
        result.actions.append(f"create cluster {want['name']}")
        if check:
            return {**payload, "id": None}
        have = client.call("POST", "/clusters", payload)
    patch = cluster_patch(payload, have)
    if patch:
        if not result.actions:
            result.actions.append(f"update cluster {want['name']}: {', '.join(sorted(patch))}")
            result.changed = True
        if check:
            return {**have, **patch}
        client.call("PATCH", f"/clusters/{have['id']}", patch)
        have = client.call("GET", f"/clusters/{have['id']}")
        left = cluster_patch(payload, have)
        if left:
            raise CrcError(f"cluster {want['name']}: the data-service did not store {', '.join(sorted(left))}")
    return have


def ensure_pool(
    client: CrcClient, want: dict[str, Any], cluster_id: str | None, check: bool, result: CrcResult
) -> dict[str, Any]:
    have = client.find("resource_pools", want["name"])
    result.before["resource_pool"] = have
    payload = pool_payload(want, cluster_id or "")
    if have is None:
        result.changed = True
        result.actions.append(f"create resource pool {want['name']}")
        return payload if check else client.call("POST", "/resource_pools", payload)
    plan = plan_pool(payload, have)
    if plan.empty:
        return have
    result.changed = True
    result.actions.append(f"update resource pool {want['name']}")
    if check:
        return payload
    pool_id = have["id"]
    for class_id in plan.remove_class_ids:
        client.call("DELETE", f"/resource_pools/{pool_id}/classes/{class_id}")
    for cls in plan.add_classes:
        client.call("POST", f"/resource_pools/{pool_id}/classes", cls)
    for class_id, body in plan.class_patches.items():
        client.call("PATCH", f"/resource_pools/{pool_id}/classes/{class_id}", body)
    if plan.patch:
        client.call("PATCH", f"/resource_pools/{pool_id}", plan.patch)
    return client.call("GET", f"/resource_pools/{pool_id}")


def ensure_absent(client: CrcClient, cluster_name: str, pool_name: str | None, check: bool) -> CrcResult:
    result = CrcResult()
    if pool_name:
        pool = client.find("resource_pools", pool_name)
        result.before["resource_pool"] = pool
        if pool is not None:
            result.changed = True
            result.actions.append(f"delete resource pool {pool_name}")
            if not check:
                client.call("DELETE", f"/resource_pools/{pool['id']}")
    cluster = client.find("clusters", cluster_name)
    result.before["cluster"] = cluster
    if cluster is not None:
        result.changed = True
        result.actions.append(f"delete cluster {cluster_name}")
        if not check:
            client.call("DELETE", f"/clusters/{cluster['id']}")
    return result


def ensure_present(client: CrcClient, cluster: dict[str, Any], pool: dict[str, Any] | None, check: bool) -> CrcResult:
    errors = validate_cluster(cluster) + (validate_pool(pool) if pool else [])
    if errors:
        raise CrcError("; ".join(errors))
    result = CrcResult()
    result.cluster = ensure_cluster(client, cluster, check, result)
    if pool:
        result.pool = ensure_pool(client, pool, result.cluster.get("id"), check, result)
    return result
