# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build, serialise and check kubeconfigs (module `kubeconfig_build`)."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml
from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import KubeYAMLError, dump_one, load_one

HAS_YAML = kube_yaml.HAS_YAML  # kubeconfig_build checks these two
YAML_IMPORT_ERROR = kube_yaml.YAML_IMPORT_ERROR

MASK = "<masked>"
SECRET_USER_KEYS = ("token", "client-key-data")


class KubeconfigError(Exception):
    """The inputs do not make a usable kubeconfig; the message names the field."""


@dataclass
class KubeconfigSpec:
    server: str
    namespace: str
    cluster_name: str
    user_name: str
    context_name: str
    ca_data: str = ""
    token: str = ""
    client_cert_data: str = ""
    client_key_data: str = ""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pem_or_b64(value: str) -> str:
    """Accept a PEM text or its base64 form; return the base64 form kubeconfig `*-data` keys want."""
    value = value.strip()
    if not value:
        return ""
    if value.startswith("-----BEGIN"):
        return _b64(value + "\n")
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise KubeconfigError("certificate data must be PEM text or base64 of PEM text") from exc
    if "-----BEGIN" not in decoded:
        raise KubeconfigError("certificate data must be PEM text or base64 of PEM text")
    return value


def validate(spec: KubeconfigSpec) -> None:
    if not spec.server.startswith("https://"):
        raise KubeconfigError(f"server must be an https:// URL, got {spec.server!r}")
    if not spec.namespace:
        raise KubeconfigError("namespace is required: the context must name the namespace")
    if bool(spec.token) == bool(spec.client_cert_data):
        raise KubeconfigError("set exactly one of token or client_cert (with client_key)")
    if bool(spec.client_cert_data) != bool(spec.client_key_data):
        raise KubeconfigError("client_cert and client_key go together")


def build(spec: KubeconfigSpec) -> dict[str, Any]:
    """A kubeconfig with one cluster, one user, one context with namespace, and current-context set."""
    validate(spec)
    cluster: dict[str, Any] = {"server": spec.server}
    if spec.ca_data:
        cluster["certificate-authority-data"] = pem_or_b64(spec.ca_data)
    user: dict[str, Any] = {}
    if spec.token:
        user["token"] = spec.token
    else:
        user["client-certificate-data"] = pem_or_b64(spec.client_cert_data)
        user["client-key-data"] = pem_or_b64(spec.client_key_data)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": spec.cluster_name, "cluster": cluster}],
        "users": [{"name": spec.user_name, "user": user}],
        "contexts": [
            {
                "name": spec.context_name,
                "context": {"cluster": spec.cluster_name, "user": spec.user_name, "namespace": spec.namespace},
            }
        ],
        "current-context": spec.context_name,
        "preferences": {},
    }


def render(config: dict[str, Any]) -> str:
    return dump_one(config, sort_keys=False, default_flow_style=False)


def one_line_base64(text: str) -> str:
    """Single-line base64, as a masked GitLab CI variable requires."""
    return base64.b64encode(text.encode()).decode()


def masked(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The kubeconfig with its secrets replaced, for diff and logs."""
    if config is None:
        return None
    out = copy.deepcopy(config)
    for entry in out.get("users") or []:
        user = entry.get("user") or {}
        for key in SECRET_USER_KEYS:
            if key in user:
                user[key] = MASK
    return out


def secret_values(config: dict[str, Any], text: str) -> set[str]:
    """Every form in which the credentials of `config` could show up in a result: the token and the client key
    (as written, base64, and the PEM it encodes), and the base64 of the whole kubeconfig `text`."""
    values = {one_line_base64(text)}
    for entry in config.get("users") or []:
        user = entry.get("user") or {}
        for key in SECRET_USER_KEYS:
            value = user.get(key)
            if not value:
                continue
            values.update({value, _b64(value)})
            if key == "client-key-data":
                values.add(base64.b64decode(value).decode().strip())
    return values


def parse(text: str) -> dict[str, Any] | None:
    try:
        data = load_one(text)
    except KubeYAMLError:  # a file that is not a kubeconfig is simply replaced
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------------
# verification: ask the API server what the kubeconfig's identity may do


def check_key(check: dict[str, Any]) -> str:
    group = check.get("group") or ""
    resource = check["resource"] + (f"/{check['subresource']}" if check.get("subresource") else "")
    where = check.get("namespace") or "(cluster)"
    return f"{check['verb']} {resource}{'.' + group if group else ''} in {where}"


def access_review_body(check: dict[str, Any]) -> dict[str, Any]:
    attrs = {
        k: v
        for k, v in {
            "verb": check["verb"],
            "resource": check["resource"],
            "group": check.get("group") or "",
            "namespace": check.get("namespace") or "",
            "subresource": check.get("subresource") or "",
            "name": check.get("name") or "",
        }.items()
        if v
    }
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }


def summarise(checks: list[dict[str, Any]], verdicts: list[bool]) -> dict[str, Any]:
    """allowed/denied lists, and the checks whose verdict differs from their `expect`."""
    allowed, denied, unexpected = [], [], []
    for check, ok in zip(checks, verdicts, strict=True):
        (allowed if ok else denied).append(check_key(check))
        expect = check.get("expect")
        if expect and (expect == "allowed") != ok:
            unexpected.append(f"{check_key(check)}: expected {expect}, got {'allowed' if ok else 'denied'}")
    return {"allowed": allowed, "denied": denied, "unexpected": unexpected}


def default_checks(namespace: str) -> list[dict[str, Any]]:
    """What an operator wants to know first: can it work in its namespace, can it escape it."""
    checks = []
    for ns in (namespace, "kube-system"):
        checks += [
            {"verb": "list", "resource": "pods", "namespace": ns},
            {"verb": "create", "resource": "deployments", "group": "apps", "namespace": ns},
            {"verb": "get", "resource": "secrets", "namespace": ns},
        ]
    checks.append({"verb": "list", "resource": "namespaces"})
    return checks


def rules_summary(status: dict[str, Any]) -> list[str]:
    """SelfSubjectRulesReview resource rules as short `verbs resources.group` lines."""
    lines = []
    for rule in status.get("resourceRules") or []:
        groups = [g for g in rule.get("apiGroups") or [] if g]
        resources = ",".join(rule.get("resources") or [])
        suffix = f".{','.join(groups)}" if groups else ""
        lines.append(f"{','.join(rule.get('verbs') or [])} {resources}{suffix}")
    return lines


def verify(api_client: Any, namespace: str, checks: list[dict[str, Any]], rest_json: Any) -> dict[str, Any]:
    """Run SelfSubjectAccessReviews for `checks` and a SelfSubjectRulesReview of `namespace`."""
    base = "/apis/authorization.k8s.io/v1"
    verdicts = []
    for check in checks:
        review = rest_json(
            api_client, "POST", f"{base}/selfsubjectaccessreviews", [], access_review_body(check), "application/json"
        )
        verdicts.append(bool((review.get("status") or {}).get("allowed")))
    rules_body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    rules = rest_json(api_client, "POST", f"{base}/selfsubjectrulesreviews", [], rules_body, "application/json")
    result = summarise(checks, verdicts)
    result["rules"] = rules_summary(rules.get("status") or {})
    return result
