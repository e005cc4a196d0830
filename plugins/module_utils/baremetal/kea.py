# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kea DHCPv4: the configuration the dhcp_pxe role writes for a validated site, and what a running Kea must hold.

The same site model as dhcpd.conf: one subnet per DHCP network, one reservation per MAC, and client classes
that give each kind of booting client its boot file. Kea fills the fixed fields from the first matching class,
so the classes are built to be mutually exclusive (each later test starts with `not member(...)` of the ones
before): the outcome never depends on evaluation order. Hosts booting with iPXE are told apart by their MAC
(`pkt4.mac`), because classes assigned by a reservation are only known after the test expressions ran.

Linear in the number of hosts: one pass builds the reservations and the iPXE MAC list.
"""

from __future__ import annotations

from typing import Any

DEFAULT_BOOT_FILES = {
    "bios": "pxelinux.0",
    "uefi": "grubx64.efi",
    "uefi_arm64": "grubaa64.efi",
    "http_boot": "grubx64.efi",
    "ipxe_bios": "undionly.kpxe",
    "ipxe_uefi": "ipxe.efi",
}
DEFAULTS: dict[str, Any] = {
    "domain_name": "",
    "default_lease_time": 3600,
    "max_lease_time": 86400,
    "authoritative": False,
    "next_server": "",
    "http_url": "",
    "interfaces": ["*"],
    "control_socket": "/run/kea/kea4-ctrl-socket",
    "lease_file": "/var/lib/kea/kea-leases4.csv",
    "log_output": "stdout",
    "log_severity": "INFO",
}
# RFC 4578 option 93 (client system architecture); RFC 7440/UEFI HTTP boot announces itself in option 60
_UEFI_X64 = "(option[93].hex == 0x0007 or option[93].hex == 0x0009)"
_UEFI_ARM64 = "option[93].hex == 0x000b"
_HTTP_CLIENT = "substring(option[60].hex,0,10) == 'HTTPClient'"
_IPXE = "option[77].hex == 'iPXE'"


def _settings(settings: dict | None) -> dict:
    merged = {**DEFAULTS, **{k: v for k, v in (settings or {}).items() if v is not None}}
    merged["boot_files"] = {**DEFAULT_BOOT_FILES, **(merged.get("boot_files") or {})}
    return merged


def _mac_hex(mac: str) -> str:
    return "0x" + mac.replace(":", "")


def served_networks(site: dict) -> list[dict]:
    return [n for n in site["networks"] if n.get("dhcp", True)]


def subnet_id(network: dict) -> int:
    """Stable across edits of the inventory: the network address as a number (networks never overlap)."""
    first, second, third, fourth = (int(p) for p in network["network_address"].split("."))
    return ((first << 24) | (second << 16) | (third << 8) | fourth) or 1


def client_classes(site: dict, settings: dict | None = None) -> list[dict]:
    """BIOS, UEFI x86-64 and arm64, HTTP boot, iPXE (second stage) and iPXE chain loading, mutually exclusive."""
    opts = _settings(settings)
    files, base = opts["boot_files"], str(opts["http_url"]).rstrip("/")
    chain_macs = [h["mac"] for h in site["hosts"] if h.get("pxe") and h["boot_mode"] == "ipxe"]
    classes = [
        {"name": "ipxe", "test": _IPXE, "boot-file-name": f"{base}/ipxe/boot.ipxe"},
        {
            "name": "http-boot",
            "test": f"not member('ipxe') and {_HTTP_CLIENT}",
            "boot-file-name": f"{base}/{files['http_boot']}",
            "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}],
        },
    ]
    firmware = "not member('ipxe') and not member('http-boot')"
    if chain_macs:
        macs = " or ".join(f"pkt4.mac == {_mac_hex(m)}" for m in chain_macs)
        classes += [
            {"name": "ipxe-chain", "test": f"{firmware} and ({macs})"},
            {
                "name": "ipxe-chain-uefi",
                "test": f"member('ipxe-chain') and {_UEFI_X64}",
                "boot-file-name": files["ipxe_uefi"],
            },
            {
                "name": "ipxe-chain-bios",
                "test": "member('ipxe-chain') and not member('ipxe-chain-uefi')",
                "boot-file-name": files["ipxe_bios"],
            },
        ]
        firmware += " and not member('ipxe-chain')"
    classes += [
        {"name": "uefi-x64", "test": f"{firmware} and {_UEFI_X64}", "boot-file-name": files["uefi"]},
        {"name": "uefi-arm64", "test": f"{firmware} and {_UEFI_ARM64}", "boot-file-name": files["uefi_arm64"]},
        {
            "name": "bios",
            "test": f"{firmware} and not member('uefi-x64') and not member('uefi-arm64')",
            "boot-file-name": files["bios"],
        },
    ]
    return classes


def reservations(site: dict) -> dict[str, list[dict]]:
    """Reservations per served network name: MAC, address and host name of every host with a MAC."""
    by_network: dict[str, list[dict]] = {n["name"]: [] for n in served_networks(site)}
    for host in site["hosts"]:
        if host["mac"] and host["network"] in by_network:
            entry = {"hw-address": host["mac"], "ip-address": host["ip"], "hostname": host["name"]}
            by_network[host["network"]].append(entry)
    return by_network


def _subnet(network: dict, reserved: list[dict], domain: str, next_server: str) -> dict:
    options = [{"name": "subnet-mask", "data": network["netmask"]}, {"name": "domain-search", "data": domain}]
    if network["gateway"]:
        options.append({"name": "routers", "data": network["gateway"]})
    if network["dns_servers"]:
        options.append({"name": "domain-name-servers", "data": ", ".join(network["dns_servers"])})
    subnet: dict[str, Any] = {
        "id": subnet_id(network),
        "subnet": network["subnet"],
        "option-data": options,
        "reservations": reserved,
    }
    if network["next_server"] or next_server:
        subnet["next-server"] = network["next_server"] or next_server
    if network["dynamic_pool"]:
        subnet["pools"] = [{"pool": f"{network['dynamic_pool']['start']} - {network['dynamic_pool']['end']}"}]
    return subnet


def kea_dhcp4_config(site: dict, settings: dict | None = None) -> dict:
    """The whole kea-dhcp4 configuration ({"Dhcp4": ...}) for a validated site."""
    opts = _settings(settings)
    domain = opts["domain_name"] or site["cluster"]["domain"]
    reserved = reservations(site)
    subnets = [_subnet(n, reserved[n["name"]], domain, opts["next_server"]) for n in served_networks(site)]
    return {
        "Dhcp4": {
            "interfaces-config": {"interfaces": list(opts["interfaces"]), "dhcp-socket-type": "raw"},
            "control-socket": {"socket-type": "unix", "socket-name": opts["control_socket"]},
            "lease-database": {"type": "memfile", "persist": True, "name": opts["lease_file"], "lfc-interval": 3600},
            "authoritative": bool(opts["authoritative"]),
            "valid-lifetime": int(opts["default_lease_time"]),
            "max-valid-lifetime": int(opts["max_lease_time"]),
            # a reserved address is only ever handed to its MAC; nothing else needs looking up
            "host-reservation-identifiers": ["hw-address"],
            "option-data": [{"name": "domain-name", "data": domain}],
            "client-classes": client_classes(site, opts),
            "subnet4": subnets,
            "loggers": [
                {
                    "name": "kea-dhcp4",
                    "output_options": [{"output": opts["log_output"]}],
                    "severity": opts["log_severity"],
                }
            ],
        }
    }
