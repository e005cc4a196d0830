#!/usr/bin/env python3
"""Bare metal at scale: validate a site and render every file the roles write, for 100 and 1,000 hosts; and
the Kea DHCPv4 configuration alone (reservations, boot classes with the iPXE MAC list) for both sizes.

Runs the collection's own filters and the roles' own templates (Jinja2, with the filters registered)
so the ratio reflects what a playbook run computes; prints `name: value` lines.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import statistics
import sys
import time
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "collections"))
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (links build/collections/ansible_collections/airgap/renku)

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import kea  # noqa: E402
from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm  # noqa: E402

ROLES = ROOT / "roles"
TEMPLATES = {
    "dns": ["zone.j2", "named.conf.j2"],
    "dhcp_pxe": ["dhcpd.conf.j2", "pxelinux-host.j2", "grub-host.j2", "ipxe-host.j2"],
    "haproxy": ["haproxy.cfg.j2"],
}


def site_inventory(count: int) -> tuple[list[dict], list[dict], dict]:
    """`count` hosts on a /16 (3 masters, 1 bootstrap, 2 lbs, the rest workers and infra)."""
    networks = [
        {
            "name": "machines",
            "subnet": "10.64.0.0/16",
            "gateway": "10.64.0.1",
            "dns_servers": ["10.64.0.2"],
            "dynamic_pool": {"start": "10.64.255.1", "end": "10.64.255.200"},
        }
    ]
    roles = ["bootstrap", "master", "master", "master", "lb", "lb"]
    hosts = []
    for n in range(count):
        role = roles[n] if n < len(roles) else ("infra" if n % 10 == 0 else "worker")
        ip = ipaddress.IPv4Address("10.64.1.0") + n
        mac = "52:54:" + ":".join(f"{b:02x}" for b in n.to_bytes(4, "big"))
        hosts.append(
            {
                "name": f"node-{n}",
                "role": role,
                "mac": mac,
                "ip": str(ip),
                "network": "machines",
                "boot_mode": ("bios", "uefi", "ipxe")[n % 3],
            }
        )
    cluster = {"name": "bench", "base_domain": "example.org", "api_vip": "10.64.0.10", "ingress_vip": "10.64.0.11"}
    return hosts, networks, cluster


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(ROLES / r / "templates") for r in TEMPLATES]),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["hash"] = lambda text, _algo: str(hash(text))
    env.filters["bool"] = bool
    return env


def render_all(count: int, env: jinja2.Environment) -> int:
    hosts, networks, cluster = site_inventory(count)
    site = bm.build_site(hosts, networks, cluster)
    zones = bm.dns_zones(site, [{"name": "ns1", "address": "10.64.0.2"}], {"etcd_records": True})
    role_args = {r: f"coreos.inst.ignition_url=http://10.64.0.2/ignition/{r}.ign ip=dhcp" for r in bm.PXE_ROLES}
    common = {
        "ansible_managed": "Ansible managed",
        "dhcp_pxe_site": site,
        "dns_zones": zones,
        "dhcp_pxe_domain_name": "",
        "dhcp_pxe_default_lease_time": 3600,
        "dhcp_pxe_max_lease_time": 86400,
        "dhcp_pxe_authoritative": False,
        "dhcp_pxe_next_server": "10.64.0.2",
        "dhcp_pxe_http_url": "http://10.64.0.2",
        "dhcp_pxe_boot_files": {
            "bios": "pxelinux.0",
            "uefi": "grubx64.efi",
            "ipxe_bios": "undionly.kpxe",
            "ipxe_uefi": "ipxe.efi",
        },
        "dhcp_pxe_kernel": "images/kernel",
        "dhcp_pxe_initrd": "images/initramfs.img",
        "dhcp_pxe_install": "coreos",
        "dhcp_pxe_role_args": role_args,
        "dns_working_dir": "/var/cache/bind",
        "dns_run_dir": "/run/named",
        "dns_listen_port": 53,
        "dns_listen_addresses": ["any"],
        "dns_listen_ipv6": False,
        "dns_allow_query": ["any"],
        "dns_recursion": False,
        "dns_allow_recursion": [],
        "dns_forwarders": [],
        "dns_includes": [],
        "dns_controls": [],
        "dns_zone_dir": "/etc/bind/zones",
    }
    servers = bm.lb_servers(site)
    lb = {
        **common,
        "haproxy_site": site,
        "haproxy_servers": servers,
        "haproxy_maxconn": 20000,
        "haproxy_timeouts": {"connect": "10s", "client": "1m", "server": "1m", "tunnel": "1h"},
        "haproxy_check_interval": "2s",
        "haproxy_check_fall": 2,
        "haproxy_check_rise": 2,
        "haproxy_stats_address": "127.0.0.1",
        "haproxy_stats_port": 9000,
        "haproxy_stats_user": "admin",
        "haproxy_stats_password": "x" * 16,
        "haproxy_bootstrap_enabled": True,
        "haproxy_bind_address": "*",
        "haproxy_cluster_ca_file": "/ca.crt",
        "haproxy_ports": {"api": 6443, "machine_config": 22623, "https": 443, "http": 80},
    }
    size = 0
    for zone in zones:
        size += len(env.get_template("zone.j2").render(common, item=zone))
    size += len(env.get_template("named.conf.j2").render(common))
    size += len(env.get_template("dhcpd.conf.j2").render(common))
    per_mode = {"bios": "pxelinux-host.j2", "uefi": "grub-host.j2", "ipxe": "ipxe-host.j2"}
    for host in site["hosts"]:
        if host["pxe"]:
            size += len(env.get_template(per_mode[host["boot_mode"]]).render(common, item=host))
    size += len(env.get_template("haproxy.cfg.j2").render(lb))
    return size


def timed(count: int, env: jinja2.Environment, repeat: int) -> float:
    """Seconds per run of `count` hosts, averaged over `repeat` runs, garbage collection held off."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(repeat):
            render_all(count, env)
        return (time.perf_counter() - started) / repeat
    finally:
        gc.enable()


def measure(env: jinja2.Environment, rounds: int = 9) -> tuple[float, float, float]:
    """Median times for 100 and 1,000 hosts and the median of the per-round ratios. Each round times
    both back to back so they see the same machine load; 100 hosts are rendered 10 times per
    measurement so both last about as long."""
    smalls, larges, ratios = [], [], []
    for _ in range(rounds):
        small, large = timed(100, env, 10), timed(1000, env, 1)
        smalls.append(small)
        larges.append(large)
        ratios.append(large / small)
    return statistics.median(smalls), statistics.median(larges), statistics.median(ratios)


KEA_SETTINGS = {"http_url": "http://10.64.0.2", "next_server": "10.64.0.2"}


def kea_sites() -> dict[int, dict]:
    return {count: bm.build_site(*site_inventory(count)) for count in (100, 1000)}


def kea_timed(site: dict, repeat: int) -> float:
    """Seconds per Kea configuration (built and serialised as the role writes it) of an already validated site."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(repeat):
            json.dumps(kea.kea_dhcp4_config(site, KEA_SETTINGS), indent=2, sort_keys=True)
        return (time.perf_counter() - started) / repeat
    finally:
        gc.enable()


def kea_measure(rounds: int = 9) -> tuple[float, float, float]:
    """As measure(): both sizes back to back per round, 100 hosts repeated 10 times per measurement."""
    sites = kea_sites()
    smalls, larges, ratios = [], [], []
    for _ in range(rounds):
        small, large = kea_timed(sites[100], 100), kea_timed(sites[1000], 10)
        smalls.append(small)
        larges.append(large)
        ratios.append(large / small)
    return statistics.median(smalls), statistics.median(larges), statistics.median(ratios)


def main() -> None:
    env = environment()
    render_all(10, env)  # compile the templates once, outside the measurement
    small, large, ratio = measure(env)
    print(f"baremetal_render_100_hosts_ms: {small * 1000:.1f}")
    print(f"baremetal_render_1000_hosts_ms: {large * 1000:.1f}")
    print(f"baremetal_1000_vs_100: {ratio:.2f}")
    small, large, ratio = kea_measure()
    print(f"baremetal_kea_render_100_hosts_ms: {small * 1000:.2f}")
    print(f"baremetal_kea_render_1000_hosts_ms: {large * 1000:.2f}")
    print(f"baremetal_kea_render_1000_vs_100: {ratio:.2f}")


if __name__ == "__main__":
    main()
