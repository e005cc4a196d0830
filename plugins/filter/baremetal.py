# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the bare-metal inventory: validate it once, derive DNS zones from it."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import check, csr, install_config, kea
from ansible_collections.airgap.renku.plugins.module_utils.baremetal.site import (
    InventoryError,
    build_site,
    dns_zones,
    lb_servers,
    reverse_zone_names,
)


def baremetal_site(hosts: list[dict], networks: list[dict], cluster: dict) -> dict:
    """The validated, normalised site model; fails listing every problem of the inventory."""
    try:
        return build_site(hosts, networks, cluster)
    except InventoryError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def baremetal_dns_zones(site: dict, nameservers: list[dict], settings: dict | None = None) -> list[dict]:
    """Forward and reverse zones (records, content-hash serial, file name) for a validated site."""
    try:
        return dns_zones(site, nameservers, settings)
    except (InventoryError, ValueError, KeyError) as exc:
        raise AnsibleFilterError(f"baremetal_dns_zones: {exc}") from exc


def baremetal_reverse_zones(subnet: str) -> list[str]:
    """The in-addr.arpa zone names covering one subnet (RFC 2317 names for prefixes longer than /24)."""
    try:
        return reverse_zone_names(subnet)
    except ValueError as exc:
        raise AnsibleFilterError(f"baremetal_reverse_zones: {exc}") from exc


def baremetal_lb_servers(site: dict, bootstrap: bool = True, ingress_roles: list[str] | None = None) -> dict:
    """HAProxy backend servers per frontend (api, machine_config, https, http) from a validated site."""
    return lb_servers(site, bool(bootstrap), ingress_roles)


def baremetal_kea_config(site: dict, settings: dict | None = None) -> dict:
    """The kea-dhcp4 configuration ({"Dhcp4": ...}) for a validated site: subnets, reservations, boot classes."""
    try:
        return kea.kea_dhcp4_config(site, settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"baremetal_kea_config: {exc}") from exc


def baremetal_csr_nodes(site: dict, name_format: str = "fqdn") -> list[dict]:
    """The nodes of a validated site as airgap.renku.node_csr_approve takes them (name, addresses, dns_names)."""
    try:
        return csr.site_nodes(site, name_format)
    except csr.CsrError as exc:
        raise AnsibleFilterError(f"baremetal_csr_nodes: {exc}") from exc


def baremetal_install_config(
    site: dict, settings: dict | None, lock: dict | None, ca_pem: str, registry: dict | None
) -> dict:
    """install-config.yaml for a mirrored site (platform none, pull secret, CA, imageDigestSources); validated."""
    try:
        return install_config.install_config(site, settings, lock or {}, ca_pem, registry or {})
    except InventoryError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"baremetal_install_config: {exc}") from exc


class FilterModule:
    """Bare-metal inventory filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "baremetal_site": baremetal_site,
            "baremetal_dns_zones": baremetal_dns_zones,
            "baremetal_reverse_zones": baremetal_reverse_zones,
            "baremetal_lb_servers": baremetal_lb_servers,
            "baremetal_kea_config": baremetal_kea_config,
            "baremetal_csr_nodes": baremetal_csr_nodes,
            "baremetal_install_config": baremetal_install_config,
            # checker (playbooks/check.yml)
            "baremetal_check_dns_expected": check.dns_expected,
            "baremetal_check_dig_arguments": check.dig_arguments,
            "baremetal_check_parse_dig": check.parse_dig,
            "baremetal_check_cname_targets": check.cname_targets,
            "baremetal_check_dns": check.dns_results,
            "baremetal_check_dhcp_expected": check.dhcp_expected,
            "baremetal_check_dhcp": check.dhcp_results,
            "baremetal_check_tftp_expected": check.tftp_expected,
            "baremetal_check_tftp_commands": check.tftp_commands,
            "baremetal_check_tftp": check.tftp_results,
            "baremetal_check_http_urls": check.http_urls,
            "baremetal_check_http": check.http_results,
            "baremetal_check_lb_expected": check.lb_expected,
            "baremetal_check_ports": check.port_results,
            "baremetal_check_report": check.report,
        }
