# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the mirror lock file, for the stages that deploy from the internal registry.

{{ 'quay.io/oauth2-proxy/oauth2-proxy:v7.6.0' | airgap.renku.mirror_image(lock) }}
{{ chart_values | airgap.renku.mirror_values_overlay(lock) }}
{{ rendered_docs | airgap.renku.mirror_rewrite(lock) }}
{{ lock | airgap.renku.mirror_containerd_hosts('/etc/containerd/certs.d/site-ca.crt') }}
{{ lock | airgap.renku.mirror_crio_registries }}
{{ 'registry.site:5000' | airgap.renku.mirror_pull_secret(user, password, 'internal-pull', 'renku') }}
{{ rendered_docs | airgap.renku.mirror_attach_pull_secret('internal-pull') }}
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.airgap.renku.plugins.module_utils.mirror.outputs import (
    LockError,
    attach_pull_secret,
    containerd_hosts,
    crio_registries_conf,
    pull_secret,
    resolve_image,
    rewrite_documents,
    values_overlay,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import ImageRefError


def _guard(name: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except (LockError, ImageRefError, KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"{name}: {exc}") from exc


def mirror_image(image: str, lock: dict) -> str:
    """The internal reference, pinned by digest, of a mirrored image."""
    return _guard("mirror_image", resolve_image, lock, image)


def mirror_values_overlay(values: dict, lock: dict) -> dict:
    """A values overlay pointing every image value of `values` at the internal registry by digest."""
    return _guard("mirror_values_overlay", values_overlay, values, lock)[0]


def mirror_rewrite(documents: list, lock: dict, strict: bool = True) -> list:
    """Rendered documents with every container image pinned to the internal registry."""
    return _guard("mirror_rewrite", rewrite_documents, list(documents), lock, strict)


def mirror_containerd_hosts(lock: dict, ca_path: str, certs_dir: str = "/etc/containerd/certs.d") -> list[dict]:
    """`hosts.toml` files as a list of {path, content} (loop over it with ansible.builtin.copy)."""
    files = _guard("mirror_containerd_hosts", containerd_hosts, lock, ca_path, certs_dir)
    return [{"path": path, "content": content} for path, content in sorted(files.items())]


def mirror_crio_registries(lock: dict) -> str:
    """The content of a containers `registries.conf` redirecting each source registry."""
    return _guard("mirror_crio_registries", crio_registries_conf, lock)


def mirror_pull_secret(registry: str, username: str, password: str, name: str, namespace: str) -> dict:
    """A `kubernetes.io/dockerconfigjson` Secret for the internal registry."""
    return _guard("mirror_pull_secret", pull_secret, name, namespace, registry, username, password)


def mirror_attach_pull_secret(documents: list, secret_name: str) -> list:
    """Documents whose pod specs and ServiceAccounts list the pull Secret in imagePullSecrets."""
    return _guard("mirror_attach_pull_secret", attach_pull_secret, list(documents), secret_name)


def mirror_service_account(name: str, namespace: str, secret_name: str) -> dict:
    """A ServiceAccount (to apply) listing the pull Secret in imagePullSecrets."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
        "imagePullSecrets": [{"name": secret_name}],
    }


class FilterModule:
    """Mirror lock file filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "mirror_image": mirror_image,
            "mirror_values_overlay": mirror_values_overlay,
            "mirror_rewrite": mirror_rewrite,
            "mirror_containerd_hosts": mirror_containerd_hosts,
            "mirror_crio_registries": mirror_crio_registries,
            "mirror_pull_secret": mirror_pull_secret,
            "mirror_attach_pull_secret": mirror_attach_pull_secret,
            "mirror_service_account": mirror_service_account,
        }
