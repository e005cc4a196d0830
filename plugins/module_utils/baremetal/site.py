# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bare-metal site model: one inventory of hosts, networks and the cluster, validated once.

`build_site` checks everything the DNS, DHCP/PXE and HAProxy roles rely on and returns a normalised
model (MACs lower case, FQDNs, PXE file names); every problem is collected into one `InventoryError`
so an operator sees all of them at once. `dns_zones` derives the forward and reverse zones (RFC 2317
classless zones included) with serials taken from a hash of the zone content.

Every check is a single pass with dictionaries: linear in the number of hosts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from typing import Any

HOST_ROLES = ("bootstrap", "master", "infra", "worker", "lb")
PXE_ROLES = ("bootstrap", "master", "infra", "worker")
BOOT_MODES = ("bios", "uefi", "ipxe")
LOAD_BALANCING = ("vip", "round_robin")
VIP_KEYS = ("api_vip", "api_int_vip", "ingress_vip")
DEFAULT_INSTALL_DISK = "/dev/sda"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
_MAX_REVERSE_ZONES_PER_NETWORK = 256

IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network


class InventoryError(ValueError):
    """The inventory has problems; `problems` lists each one (host, field, what to fix)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the bare-metal inventory has {len(problems)} problem(s); nothing was changed:\n{lines}")


# --------------------------------------------------------------------------------------------------
# small parsers


def normalise_mac(value: Any) -> str | None:
    """aa:bb:cc:dd:ee:ff (lower case, colons) or None when `value` is not a MAC address."""
    text = str(value or "").strip().lower()
    return text.replace("-", ":") if _MAC.match(text) else None


def pxe_id(mac: str) -> str:
    """The name PXELINUX and GRUB look up for a client: `01-` (Ethernet) and the MAC with dashes."""
    return "01-" + mac.replace(":", "-")


def valid_label(name: str) -> bool:
    """An RFC 1123 host label: letters, digits and inner hyphens, at most 63 characters."""
    return bool(_LABEL.match(name))


def valid_domain(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return len(name) <= 253 and all(valid_label(label) for label in labels) and len(labels) >= 1


def _address(value: Any) -> IPv4 | None:
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        return None


def _subnet(value: Any) -> Net4 | None:
    try:
        return ipaddress.IPv4Network(str(value).strip(), strict=True)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# networks and cluster


def _check_network(index: int, net: dict, problems: list[str]) -> dict | None:
    where = f'networks[{index}] "{net.get("name", "")}"'
    name = str(net.get("name") or "")
    subnet = _subnet(net.get("subnet"))
    if not name:
        problems.append(f"networks[{index}] name: missing; give every network a name hosts can refer to")
    if subnet is None:
        problems.append(f"{where} subnet: {net.get('subnet')!r} is not an IPv4 network such as 192.0.2.0/24")
        return None
    gateway = _address(net.get("gateway")) if net.get("gateway") else None
    if net.get("gateway") and (gateway is None or gateway not in subnet):
        problems.append(f"{where} gateway: {net.get('gateway')!r} is not an address inside {subnet}")
    dns_servers = []
    for server in net.get("dns_servers") or []:
        addr = _address(server)
        if addr is None:
            problems.append(f"{where} dns_servers: {server!r} is not an IPv4 address")
        else:
            dns_servers.append(str(addr))
    pool = _check_pool(where, subnet, net.get("dynamic_pool"), problems)
    next_server = _address(net.get("next_server")) if net.get("next_server") else None
    if net.get("next_server") and next_server is None:
        problems.append(f"{where} next_server: {net.get('next_server')!r} is not an IPv4 address")
    return {
        "name": name,
        "subnet": str(subnet),
        "network_address": str(subnet.network_address),
        "netmask": str(subnet.netmask),
        "prefix": subnet.prefixlen,
        "broadcast": str(subnet.broadcast_address),
        "gateway": str(gateway) if gateway else "",
        "dns_servers": dns_servers,
        "dynamic_pool": {"start": str(pool[0]), "end": str(pool[1])} if pool else None,
        "next_server": str(next_server) if next_server else "",
        "dhcp": bool(net.get("dhcp", True)),
        "_net": subnet,
        "_pool": pool,
        "_gateway": gateway,
    }


def _check_pool(where: str, subnet: Net4, pool: Any, problems: list[str]) -> tuple[IPv4, IPv4] | None:
    if not pool:
        return None
    if not isinstance(pool, dict):
        problems.append(f"{where} dynamic_pool: give it as {{start: <address>, end: <address>}}")
        return None
    start, end = _address(pool.get("start")), _address(pool.get("end"))
    if start is None or end is None or start not in subnet or end not in subnet or start > end:
        problems.append(
            f"{where} dynamic_pool: {pool.get('start')!r}..{pool.get('end')!r} must be two addresses inside "
            f"{subnet}, start <= end"
        )
        return None
    return start, end


def _check_cluster(cluster: dict, problems: list[str]) -> dict:
    name = str(cluster.get("name") or "").lower()
    base = str(cluster.get("base_domain") or "").lower().rstrip(".")
    if not valid_label(name):
        problems.append(f"cluster name: {cluster.get('name')!r} must be an RFC 1123 label (a-z, 0-9, inner '-')")
    if not base or not valid_domain(base):
        problems.append(f"cluster base_domain: {cluster.get('base_domain')!r} must be a DNS domain such as example.org")
    mode = str(cluster.get("load_balancer") or "vip")
    if mode not in LOAD_BALANCING:
        problems.append(
            f"cluster load_balancer: {mode!r} is not one of {', '.join(LOAD_BALANCING)} (vip: api, api-int and "
            "*.apps name floating addresses; round_robin: one A record per lb host)"
        )
    vips = _check_round_robin_vips(cluster, problems) if mode == "round_robin" else _check_vips_given(cluster, problems)
    return {
        "name": name,
        "base_domain": base,
        "domain": f"{name}.{base}",
        "load_balancer": mode,
        **{k: str(v) if v else "" for k, v in vips.items()},
        "_vips": vips,
    }


def _check_vips_given(cluster: dict, problems: list[str]) -> dict[str, IPv4 | None]:
    vips = {}
    for key in VIP_KEYS:
        raw = cluster.get(key) or (cluster.get("api_vip") if key == "api_int_vip" else None)
        addr = _address(raw) if raw else None
        if addr is None:
            problems.append(
                f"cluster {key}: {raw!r} is not an IPv4 address; give the floating address, or set "
                "load_balancer: round_robin to give api, api-int and *.apps one A record per lb host instead"
            )
        vips[key] = addr
    return vips


def _check_round_robin_vips(cluster: dict, problems: list[str]) -> dict[str, IPv4 | None]:
    given = [key for key in VIP_KEYS if cluster.get(key)]
    if given:
        problems.append(
            f"cluster {', '.join(given)}: VIPs and round-robin load balancing are mutually exclusive; with "
            f"load_balancer: round_robin, api, api-int and *.apps get one A record per lb host, so remove "
            f"{', '.join(given)} (or set load_balancer: vip and keep the VIPs)"
        )
    return dict.fromkeys(VIP_KEYS)


# --------------------------------------------------------------------------------------------------
# hosts


def _check_host(index: int, host: dict, networks: dict[str, dict], problems: list[str]) -> dict:
    raw_name = str(host.get("name") or "")
    name = raw_name.lower()
    where = f'hosts[{index}] "{raw_name}"'
    if not valid_label(name):
        problems.append(f"{where} name: must be an RFC 1123 label (a-z, 0-9, inner '-', at most 63 characters)")
    role = str(host.get("role") or "")
    if role not in HOST_ROLES:
        problems.append(f"{where} role: {role!r} is not one of {', '.join(HOST_ROLES)}")
    boot_mode = str(host.get("boot_mode") or "bios")
    if boot_mode not in BOOT_MODES:
        problems.append(f"{where} boot_mode: {boot_mode!r} is not one of {', '.join(BOOT_MODES)}")
    mac = normalise_mac(host.get("mac"))
    if mac is None and (host.get("mac") or role != "lb"):
        problems.append(f"{where} mac: {host.get('mac')!r} is not a MAC address such as 52:54:00:12:34:56")
    ip = _address(host.get("ip"))
    network = networks.get(str(host.get("network") or ""))
    if ip is None:
        problems.append(f"{where} ip: {host.get('ip')!r} is not an IPv4 address")
    elif network is None:
        problems.append(f"{where} network: {host.get('network')!r} is not the name of a network in networks")
    else:
        _check_address_in_network(where, ip, network, problems)
    return {
        "name": name,
        "role": role,
        "mac": mac or "",
        "pxe_id": pxe_id(mac) if mac else "",
        "ip": str(ip) if ip else "",
        "network": str(host.get("network") or ""),
        "install_disk": str(host.get("install_disk") or DEFAULT_INSTALL_DISK),
        "boot_mode": boot_mode,
        "pxe": role in PXE_ROLES and mac is not None,
        "_ip": ip,
    }


def _check_address_in_network(where: str, ip: IPv4, network: dict, problems: list[str]) -> None:
    subnet: Net4 = network["_net"]
    if ip not in subnet:
        problems.append(f"{where} ip: {ip} is outside its network {network['name']} ({subnet})")
        return
    if subnet.prefixlen < 31 and ip in (subnet.network_address, subnet.broadcast_address):
        problems.append(f"{where} ip: {ip} is the network or broadcast address of {subnet}")
    if network["_gateway"] == ip:
        problems.append(f"{where} ip: {ip} is the gateway of {network['name']}")
    pool = network["_pool"]
    if pool and pool[0] <= ip <= pool[1]:
        problems.append(
            f"{where} ip: {ip} is inside the dynamic pool {pool[0]}-{pool[1]} of {network['name']}; "
            "static leases must lie outside the pool"
        )


def _check_unique(hosts: list[dict], problems: list[str]) -> None:
    """One pass per field with a dict of first owners: linear, never pairwise."""
    for field in ("name", "ip", "mac"):
        owners: dict[str, int] = {}
        for index, host in enumerate(hosts):
            value = host[field]
            if not value:
                continue
            if value in owners:
                first = owners[value]
                problems.append(
                    f'hosts[{index}] "{host["name"]}" {field}: {value} is also used by hosts[{first}] '
                    f'"{hosts[first]["name"]}"; give each host its own {field}'
                )
            else:
                owners[value] = index


def _check_roles(hosts: list[dict], problems: list[str]) -> None:
    masters = sum(1 for h in hosts if h["role"] == "master")
    if masters % 2 == 0:
        problems.append(f"hosts: {masters} masters; etcd needs an odd number of masters (1, 3 or 5)")
    bootstraps = [h["name"] for h in hosts if h["role"] == "bootstrap"]
    if len(bootstraps) > 1:
        problems.append(f"hosts: more than one bootstrap host ({', '.join(bootstraps)}); keep one")


def _check_vips(cluster: dict, hosts: list[dict], networks: list[dict], problems: list[str]) -> None:
    if cluster["load_balancer"] == "round_robin" and not any(h["role"] == "lb" for h in hosts):
        problems.append(
            "cluster load_balancer: round_robin needs at least one host with role lb (api, api-int and *.apps "
            "name every lb host); add the load balancers to hosts, or set load_balancer: vip with the VIPs"
        )
    by_ip = {h["ip"]: h for h in hosts if h["ip"]}
    for key, vip in cluster["_vips"].items():
        if vip is None:
            continue
        owner = by_ip.get(str(vip))
        if owner is not None:
            hint = (
                ", or set load_balancer: round_robin (and drop the VIPs) for one A record per lb host"
                if owner["role"] == "lb"
                else ""
            )
            problems.append(
                f"cluster {key}: {vip} is also the address of host {owner['name']}; use a free address{hint}"
            )
        for net in networks:
            pool = net["_pool"]
            if pool and pool[0] <= vip <= pool[1]:
                problems.append(f"cluster {key}: {vip} is inside the dynamic pool of {net['name']}")


# --------------------------------------------------------------------------------------------------
# the model


def build_site(hosts: list[dict], networks: list[dict], cluster: dict) -> dict:
    """Validate the inventory and return the normalised model; raise InventoryError listing every problem."""
    problems: list[str] = []
    if not isinstance(hosts, list) or not isinstance(networks, list) or not isinstance(cluster, dict):
        raise InventoryError(["hosts and networks must be lists and cluster a dictionary"])
    checked_nets = [_check_network(i, n or {}, problems) for i, n in enumerate(networks)]
    nets = [n for n in checked_nets if n is not None]
    by_name: dict[str, dict] = {}
    for index, net in enumerate(nets):
        if net["name"] in by_name:
            problems.append(f'networks[{index}] name: "{net["name"]}" is used twice; network names must be unique')
        by_name[net["name"]] = net
    _check_overlaps(nets, problems)
    checked_cluster = _check_cluster(cluster, problems)
    checked_hosts = [_check_host(i, h or {}, by_name, problems) for i, h in enumerate(hosts)]
    _check_unique(checked_hosts, problems)
    _check_roles(checked_hosts, problems)
    _check_vips(checked_cluster, checked_hosts, nets, problems)
    if problems:
        raise InventoryError(problems)
    domain = checked_cluster["domain"]
    for host in checked_hosts:
        host["fqdn"] = f"{host['name']}.{domain}"
    lb_ips = [h["ip"] for h in checked_hosts if h["role"] == "lb"]
    checked_cluster["lb_addresses"] = lb_ips if checked_cluster["load_balancer"] == "round_robin" else []
    return {
        "cluster": _public(checked_cluster),
        "networks": [_public(n) for n in nets],
        "hosts": [_public(h) for h in checked_hosts],
    }


def _check_overlaps(nets: list[dict], problems: list[str]) -> None:
    """Sorted by start address, each network can only overlap its predecessor's running end."""
    ordered = sorted(nets, key=lambda n: (n["_net"].network_address, n["_net"].prefixlen))
    last: dict | None = None
    for net in ordered:
        if last is not None and net["_net"].network_address <= last["_net"].broadcast_address:
            problems.append(f'networks "{net["name"]}": {net["subnet"]} overlaps "{last["name"]}" ({last["subnet"]})')
        if last is None or net["_net"].broadcast_address > last["_net"].broadcast_address:
            last = net


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


# --------------------------------------------------------------------------------------------------
# DNS


def zone_serial(content: Any) -> int:
    """A zone serial from a hash of the zone content: same content, same serial (1 .. 2**31 - 1)."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1


def reverse_zone_names(subnet: str) -> list[str]:
    """The in-addr.arpa zones covering `subnet`; RFC 2317 names (`<first>-<prefix>.c.b.a`) past /24."""
    net = ipaddress.IPv4Network(subnet)
    if net.prefixlen > 24:
        octets = str(net.network_address).split(".")
        return [f"{octets[3]}-{net.prefixlen}.{octets[2]}.{octets[1]}.{octets[0]}.in-addr.arpa"]
    boundary = -(-net.prefixlen // 8) * 8 or 8
    count = 2 ** (boundary - net.prefixlen)
    if count > _MAX_REVERSE_ZONES_PER_NETWORK:
        raise ValueError(f"{subnet}: a network wider than /16 would need {count} reverse zones")
    return [sub.reverse_pointer.split(".", 4 - boundary // 8)[-1] for sub in net.subnets(new_prefix=boundary)]


def _reverse_zone_for(ip: IPv4, zones: list[tuple[Net4, str]]) -> tuple[str, str] | None:
    """(zone, owner name relative to the zone) for `ip`; zones are few per network, so this is O(1) per host."""
    for net, zone in zones:
        if ip in net:
            pointer = ip.reverse_pointer
            return zone, pointer[: -len(zone) - 1] if pointer.endswith(zone) else pointer.split(".", 1)[0]
    return None


def _network_zone_blocks(subnet: str) -> list[tuple[Net4, str]]:
    net = ipaddress.IPv4Network(subnet)
    names = reverse_zone_names(subnet)
    if net.prefixlen > 24:
        return [(net, names[0])]
    boundary = -(-net.prefixlen // 8) * 8 or 8
    return list(zip(net.subnets(new_prefix=boundary), names, strict=True))


def dns_zones(site: dict, nameservers: list[dict], settings: dict | None = None) -> list[dict]:
    """Forward zone and every reverse zone of the site, records sorted, each with a content-hash serial.

    `settings`: ttl, refresh, retry, expire, minimum, hostmaster (an email or SOA rname),
    etcd_records (bool), classless_parent_zones (bool: also serve the /24 parent of RFC 2317 zones
    with the CNAMEs that point into them).
    """
    opts = {
        "ttl": 3600,
        "refresh": 3600,
        "retry": 900,
        "expire": 604800,
        "minimum": 300,
        "hostmaster": "",
        "etcd_records": False,
        "classless_parent_zones": False,
        **(settings or {}),
    }
    cluster = site["cluster"]
    domain = cluster["domain"]
    if not nameservers:
        raise InventoryError(["dns nameservers: give at least one {name, address} for the NS records"])
    mname = f"{nameservers[0]['name']}.{domain}."
    rname = (opts["hostmaster"] or f"hostmaster.{domain}").replace("@", ".").rstrip(".") + "."
    forward = _forward_records(site, nameservers, opts["etcd_records"])
    reverse = _reverse_records(site, nameservers, opts["classless_parent_zones"])
    zones = [_zone(domain, "forward", forward, nameservers, mname, rname, opts)]
    zones += [_zone(name, "reverse", records, nameservers, mname, rname, opts) for name, records in reverse.items()]
    return zones


def _zone(
    name: str, kind: str, records: list[dict], nameservers: list[dict], mname: str, rname: str, opts: dict
) -> dict:
    domain_ns = [f"{ns['name']}.{mname.split('.', 1)[1]}" for ns in nameservers]
    soa = {k: opts[k] for k in ("refresh", "retry", "expire", "minimum")}
    body = {
        "name": name,
        "ttl": opts["ttl"],
        "mname": mname,
        "rname": rname,
        "soa": soa,
        "ns": domain_ns,
        "records": records,
    }
    return {**body, "kind": kind, "file": f"db.{name}", "serial": zone_serial(body)}


def _forward_records(site: dict, nameservers: list[dict], etcd: bool) -> list[dict]:
    cluster = site["cluster"]
    domain = cluster["domain"]
    records = [{"name": ns["name"], "type": "A", "value": str(ns["address"])} for ns in nameservers]
    named = {r["name"] for r in records}
    records += [{"name": h["name"], "type": "A", "value": h["ip"]} for h in site["hosts"] if h["name"] not in named]
    for owner, address in cluster_names(cluster):
        records.append({"name": owner, "type": "A", "value": address})
    if etcd:
        masters = [h for h in site["hosts"] if h["role"] == "master"]
        for n, master in enumerate(masters):
            records.append({"name": f"etcd-{n}", "type": "A", "value": master["ip"]})
            records.append({"name": "_etcd-server-ssl._tcp", "type": "SRV", "value": f"0 10 2380 etcd-{n}.{domain}."})
    return records


def cluster_names(cluster: dict) -> list[tuple[str, str]]:
    """(owner, address) of the A records of api, api-int and *.apps: the VIPs, or every lb host (round robin)."""
    if cluster.get("load_balancer") == "round_robin":
        return [(owner, ip) for owner in ("api", "api-int", "*.apps") for ip in cluster["lb_addresses"]]
    return [("api", cluster["api_vip"]), ("api-int", cluster["api_int_vip"]), ("*.apps", cluster["ingress_vip"])]


def lb_endpoints(site: dict, ports: dict[str, int]) -> list[dict]:
    """Where clients reach each load-balancer port: API and machine config on the API VIPs, ingress on the
    ingress VIP; with round robin every port on every lb host (DNS hands out each of them)."""
    cluster = site["cluster"]
    if cluster.get("load_balancer") == "round_robin":
        return [{"name": n, "address": ip, "port": p} for ip in cluster["lb_addresses"] for n, p in ports.items()]
    where = {"api": cluster["api_vip"], "machine_config": cluster["api_int_vip"]}
    return [{"name": n, "address": where.get(n, cluster["ingress_vip"]), "port": p} for n, p in ports.items()]


def _reverse_records(site: dict, nameservers: list[dict], classless_parents: bool) -> dict[str, list[dict]]:
    zones: dict[str, list[dict]] = {}
    blocks: list[tuple[Net4, str]] = []
    for net in site["networks"]:
        for block, zone in _network_zone_blocks(net["subnet"]):
            zones.setdefault(zone, [])
            blocks.append((block, zone))
    domain = site["cluster"]["domain"]
    pointers = [(h["ip"], f"{h['fqdn']}.") for h in site["hosts"]]
    if site["cluster"]["api_vip"]:  # round robin: the lb hosts' own PTRs name them
        pointers.append((site["cluster"]["api_vip"], f"api.{domain}."))
    if site["cluster"]["api_int_vip"] != site["cluster"]["api_vip"]:
        pointers.append((site["cluster"]["api_int_vip"], f"api-int.{domain}."))
    pointers += [(str(ns["address"]), f"{ns['name']}.{domain}.") for ns in nameservers]
    by_network: dict[int, list[tuple[Net4, str]]] = {}  # blocks per /24: hosts share few of them
    seen: set[str] = set()
    for ip_text, target in pointers:
        if ip_text in seen:
            continue
        seen.add(ip_text)
        ip = ipaddress.IPv4Address(ip_text)
        key = int(ip) >> 8
        candidates = by_network.get(key)
        if candidates is None:
            candidates = [b for b in blocks if b[0].overlaps(ipaddress.IPv4Network((key << 8, 24)))]
            by_network[key] = candidates
        found = _reverse_zone_for(ip, candidates)
        if found:
            zones[found[0]].append({"name": found[1], "type": "PTR", "value": target})
    if classless_parents:
        _add_classless_parents(blocks, zones, [f"{ns['name']}.{domain}." for ns in nameservers])
    return zones


def _add_classless_parents(blocks: list[tuple[Net4, str]], zones: dict[str, list[dict]], ns_names: list[str]) -> None:
    """RFC 2317: the /24 parent answers every address of a classless block with a CNAME into it."""
    for block, zone in blocks:
        if block.prefixlen <= 24:
            continue
        parent = zone.split(".", 1)[1]
        records = zones.setdefault(parent, [])
        label = zone.split(".", 1)[0]
        for ip in block:
            last = str(ip).rsplit(".", 1)[1]
            records.append({"name": last, "type": "CNAME", "value": f"{last}.{zone}."})
        records += [{"name": label, "type": "NS", "value": ns} for ns in ns_names]


# --------------------------------------------------------------------------------------------------
# load balancer


BACKEND_PORTS = {"api": 6443, "machine_config": 22623, "https": 443, "http": 80}


def lb_servers(site: dict, bootstrap: bool = True, ingress_roles: list[str] | None = None) -> dict[str, list[dict]]:
    """HAProxy backend servers per frontend: API and machine config on the control plane (bootstrap
    while `bootstrap`), ingress on `ingress_roles` hosts, falling back to workers when there are none."""
    wanted = {"master", "bootstrap"} if bootstrap else {"master"}
    control_plane = [h for h in site["hosts"] if h["role"] in wanted]
    roles = set(ingress_roles or ["infra"])
    ingress = [h for h in site["hosts"] if h["role"] in roles] or [h for h in site["hosts"] if h["role"] == "worker"]
    servers: dict[str, list[dict]] = {}
    for backend, port in BACKEND_PORTS.items():
        hosts = control_plane if backend in ("api", "machine_config") else ingress
        servers[backend] = [{"name": h["name"], "address": h["ip"], "port": port} for h in hosts]
    return servers
