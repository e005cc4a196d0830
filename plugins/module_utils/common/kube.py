# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes client construction shared by the collection's modules (paired with doc fragment `kube_auth`)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    ApiException = Exception  # type: ignore[assignment,misc]

KUBE_AUTH_ARGSPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"]},
}


class KubeAuthError(Exception):
    """The connection options do not describe a usable API server."""


@dataclass(frozen=True)
class KubeAuth:
    """The `kube_auth` options, typed once at the module boundary (`KubeAuth.from_params(module.params)`)."""

    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    api_key: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> KubeAuth:
        return cls(**{name: params.get(name) for name in KUBE_AUTH_ARGSPEC})


def build_api_client(auth: KubeAuth) -> Any:
    """An ApiClient from explicit host/token/certificates, or from a kubeconfig file and context.

    TLS is always verified: against `ca_cert` when given, else the kubeconfig's CA.
    """
    if auth.host:
        configuration = k8s_client.Configuration()
        configuration.host = auth.host
        if auth.api_key:
            configuration.api_key = {"authorization": "Bearer " + auth.api_key}
        if auth.ca_cert:
            configuration.ssl_ca_cert = auth.ca_cert
        if auth.client_cert:
            configuration.cert_file = auth.client_cert
            configuration.key_file = auth.client_key
        return k8s_client.ApiClient(configuration)
    if not auth.kubeconfig:
        raise KubeAuthError("set either 'kubeconfig' (with optional 'context') or 'host' with 'api_key' and 'ca_cert'")
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=auth.kubeconfig, context=auth.context, client_configuration=configuration
        )
    except Exception as exc:  # the loader raises several unrelated types for a bad file or context
        raise KubeAuthError(f"cannot load kubeconfig {auth.kubeconfig!r}: {exc}") from exc
    if auth.ca_cert:
        configuration.ssl_ca_cert = auth.ca_cert
    return k8s_client.ApiClient(configuration)


def api_error_message(exc: Exception, what: str) -> str:
    """A one-line explanation of an API failure that names the likely fix."""
    status = exc.status if isinstance(exc, ApiException) else getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or str(exc)
    if status == 401:
        return (
            f"{what}: the API server rejected the credentials (401 Unauthorized); check the token or client certificate"
        )
    if status == 403 and "because it is being terminated" in str(getattr(exc, "body", "") or ""):
        return (
            f"{what}: the namespace is being deleted (Terminating) and takes no new content; run again once it is gone"
        )
    if status == 403:
        return f"{what}: forbidden (403); the identity lacks RBAC permission: {reason}"
    if status is None or status == 0:
        return f"{what}: the API server is unreachable ({reason}); check 'host'/'kubeconfig' and that it is up"
    return f"{what}: API error {status} {reason}"
