# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bare-metal checker: what the site should answer, and the verdict on what it did answer.

Used by playbooks/check.yml: DNS (A, PTR, SRV) from batched `dig` output, the DHCP server's reservations
and client classes (Kea: its running configuration from `config-get`; dhcpd: its file), per-MAC boot files
fetched over TFTP, HTTP HEAD of the boot content, load balancer ports. Each result is
{check, name, ok, expected, got}; `report` sums them up.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import kea
from ansible_collections.airgap.renku.plugins.module_utils.baremetal.site import cluster_names, lb_endpoints

_DHCPD_HOST = re.compile(
    r"host\s+(?P<name>[\w.-]+)\s*\{[^}]*?hardware ethernet\s+(?P<mac>[0-9a-fA-F:]+);[^}]*?fixed-address\s+(?P<ip>[\d.]+);"
)


def dns_expected(site: dict, etcd_records: bool = False) -> list[dict]:
    """Every record a client will look up: A per host, api/api-int/*.apps (VIPs or every lb host), PTR per
    host, the etcd SRV set."""
    cluster = site["cluster"]
    domain = cluster["domain"]
    expected = [{"type": "A", "name": f"{h['fqdn']}.", "expected": [h["ip"]]} for h in site["hosts"]]
    by_owner: dict[str, list[str]] = {}
    for owner, address in cluster_names(cluster):
        by_owner.setdefault(owner.replace("*", "console-check"), []).append(address)
    expected += [{"type": "A", "name": f"{owner}.{domain}.", "expected": ips} for owner, ips in by_owner.items()]
    expected += [
        {"type": "PTR", "name": ipaddress.IPv4Address(h["ip"]).reverse_pointer + ".", "expected": [f"{h['fqdn']}."]}
        for h in site["hosts"]
    ]
    if etcd_records:
        masters = [h for h in site["hosts"] if h["role"] == "master"]
        srv = sorted(f"0 10 2380 etcd-{n}.{domain}." for n in range(len(masters)))
        expected.append({"type": "SRV", "name": f"_etcd-server-ssl._tcp.{domain}.", "expected": srv})
    return expected


def dig_arguments(expected: list[dict]) -> list[str]:
    """Query arguments for one `dig` run that asks every expected record."""
    args: list[str] = []
    for item in expected:
        args += [item["name"], item["type"]]
    return args


def parse_dig(*outputs: str) -> dict[str, dict[str, list[str]]]:
    """`dig +noall +answer` lines -> {owner: {type: [values]}} (owners lower case, absolute)."""
    answers: dict[str, dict[str, list[str]]] = {}
    for output in outputs:
        for line in output.splitlines():
            parts = line.split(None, 4)
            if len(parts) < 5 or line.startswith(";"):
                continue
            owner, _ttl, _cls, rtype, value = parts
            answers.setdefault(owner.lower(), {}).setdefault(rtype.upper(), []).append(" ".join(value.split()))
    return answers


def cname_targets(expected: list[dict], answers: dict) -> list[str]:
    """Targets of CNAMEs met where a PTR was expected (RFC 2317), to ask in a second round."""
    targets = []
    for item in expected:
        found = answers.get(item["name"].lower(), {})
        if item["type"] == "PTR" and "PTR" not in found and found.get("CNAME"):
            targets.append(found["CNAME"][0])
    return targets


def dns_results(expected: list[dict], answers: dict) -> list[dict]:
    results = []
    for item in expected:
        found = answers.get(item["name"].lower(), {})
        got = found.get(item["type"], [])
        via = ""
        if not got and item["type"] == "PTR" and found.get("CNAME"):
            via = found["CNAME"][0]
            got = answers.get(via.lower(), {}).get("PTR", [])
        ok = sorted(v.lower() for v in got) == sorted(v.lower() for v in item["expected"])
        name = f"{item['type']} {item['name']}" + (f" (via CNAME {via})" if via else "")
        results.append({"check": "dns", "name": name, "ok": ok, "expected": item["expected"], "got": got})
    return results


def dhcp_expected(site: dict, settings: dict | None = None) -> dict:
    """What the DHCP server must hold: a reservation per MAC on a served network, and the boot classes."""
    reserved = [r for entries in kea.reservations(site).values() for r in entries]
    classes = {c["name"]: c.get("boot-file-name", "") for c in kea.client_classes(site, settings)}
    return {"reservations": reserved, "classes": classes}


def _kea_live(response: str) -> tuple[dict[str, dict], dict[str, str], str]:
    """Reservations by MAC and boot file by class from a `config-get` answer; the error text when there is none."""
    try:
        answer = json.loads(response or "")
    except ValueError:
        return {}, {}, f"no answer from Kea's control socket: {response[:200]!r}"
    answer = answer[0] if isinstance(answer, list) and answer else answer
    if not isinstance(answer, dict) or answer.get("result") != 0:
        return {}, {}, f"config-get failed: {str(answer)[:200]}"
    dhcp4 = answer.get("arguments", {}).get("Dhcp4", {})
    by_mac = {
        str(r.get("hw-address", "")).lower(): r for s in dhcp4.get("subnet4", []) for r in s.get("reservations", [])
    }
    classes = {c["name"]: c.get("boot-file-name", "") for c in dhcp4.get("client-classes", [])}
    return by_mac, classes, ""


def _dhcpd_live(text: str) -> dict[str, dict]:
    return {
        m["mac"].lower(): {"hw-address": m["mac"].lower(), "ip-address": m["ip"], "hostname": m["name"]}
        for m in _DHCPD_HOST.finditer(text or "")
    }


def dhcp_results(expected: dict, live: str, server: str = "kea") -> list[dict]:
    """Verdicts per reservation (address and host name) and, for Kea, per boot class (its boot file).

    `live` is Kea's `config-get` answer (server kea) or the text of dhcpd.conf (server isc)."""
    error = ""
    classes: dict[str, str] = {}
    if server == "kea":
        by_mac, classes, error = _kea_live(live)
    else:
        by_mac = _dhcpd_live(live)
    results = []
    for want in expected["reservations"]:
        got = by_mac.get(want["hw-address"])
        ok = bool(got) and got.get("ip-address") == want["ip-address"] and got.get("hostname") == want["hostname"]
        shown = error or ("no reservation" if not got else f"{got.get('ip-address')} {got.get('hostname')}")
        results.append(
            {
                "check": "dhcp",
                "name": f"reservation {want['hw-address']} ({want['hostname']})",
                "ok": ok,
                "expected": f"{want['ip-address']} {want['hostname']}",
                "got": shown,
            }
        )
    if server != "kea":
        return results
    for name, boot_file in expected["classes"].items():
        ok = name in classes and classes[name] == boot_file
        got = error or classes.get(name, "no such class")
        results.append({"check": "dhcp", "name": f"class {name}", "ok": ok, "expected": boot_file, "got": got})
    return results


def tftp_expected(site: dict, grub_dir: str, config_files: dict[str, str]) -> list[dict]:
    """Per-MAC files a booting host asks the TFTP server for, and what each must name."""
    expected = []
    for host in site["hosts"]:
        if not host.get("pxe"):
            continue
        if host["boot_mode"] == "bios":
            path = f"pxelinux.cfg/{host['pxe_id']}"
        elif host["boot_mode"] == "uefi":
            path = f"{grub_dir}/grub.cfg-{host['pxe_id']}"
        else:
            continue  # iPXE scripts come over HTTP
        must = [config_files.get(host["role"], ""), host["install_disk"]]
        expected.append({"host": host["name"], "path": path, "local": f"f{len(expected)}", "must_contain": must})
    return expected


def tftp_commands(expected: list[dict]) -> str:
    """Commands for one interactive tftp-hpa session fetching every file."""
    return "binary\n" + "".join(f"get {item['path']} {item['local']}\n" for item in expected) + "quit\n"


def tftp_results(expected: list[dict], directory: str) -> list[dict]:
    results = []
    for item in expected:
        path = Path(directory) / item["local"]
        text = path.read_text(errors="replace") if path.is_file() else ""
        missing = [m for m in item["must_contain"] if m and m not in text]
        ok = bool(text) and not missing
        got = "not fetched" if not text else ("missing " + ", ".join(missing) if missing else "fetched")
        name = f"{item['path']} ({item['host']})"
        results.append({"check": "tftp", "name": name, "ok": ok, "expected": item["must_contain"], "got": got})
    return results


def http_urls(site: dict, base_url: str, config_files: dict[str, str]) -> list[str]:
    """Boot content every host needs over HTTP: its role's ignition/kickstart file, iPXE scripts."""
    base = base_url.rstrip("/")
    roles = {h["role"] for h in site["hosts"] if h.get("pxe")}
    urls = sorted({f"{base}/{config_files[r]}" for r in roles if r in config_files})
    ipxe = [h for h in site["hosts"] if h.get("pxe") and h["boot_mode"] == "ipxe"]
    if ipxe:
        urls.append(f"{base}/ipxe/boot.ipxe")
        urls += [f"{base}/ipxe/{h['mac'].replace(':', '-')}.ipxe" for h in ipxe]
    return urls


def http_results(uri_results: list[dict]) -> list[dict]:
    """Verdicts from the registered results of an ansible.builtin.uri HEAD loop."""
    return [
        {
            "check": "http",
            "name": f"HEAD {r['item']}",
            "ok": r.get("status") == 200,
            "expected": 200,
            "got": r.get("status", r.get("msg", "")),
        }
        for r in uri_results
    ]


def lb_expected(site: dict, ports: dict[str, int], address: str = "") -> list[dict]:
    """{name, address, port} for every load-balancer port clients use; `address` puts them all on one address."""
    if address:
        return [{"name": name, "address": address, "port": port} for name, port in ports.items()]
    return lb_endpoints(site, ports)


def port_results(wait_results: list[dict], host: str = "") -> list[dict]:
    """Verdicts from the registered results of an ansible.builtin.wait_for loop over {name, port[, address]} items."""
    return [
        {
            "check": "lb",
            "name": f"{r['item']['name']} {r['item'].get('address', host)}:{r['item']['port']}",
            "ok": not r.get("failed", False),
            "expected": "port answers",
            "got": "answers" if not r.get("failed", False) else r.get("msg", "no answer"),
        }
        for r in wait_results
    ]


def report(*groups: list[dict]) -> dict[str, Any]:
    checks = [item for group in groups for item in group]
    failed = [c for c in checks if not c["ok"]]
    by_kind: dict[str, dict[str, int]] = {}
    for c in checks:
        kind = by_kind.setdefault(c["check"], {"passed": 0, "failed": 0})
        kind["passed" if c["ok"] else "failed"] += 1
    return {
        "ok": not failed,
        "total": len(checks),
        "passed": len(checks) - len(failed),
        "failed": len(failed),
        "by_check": by_kind,
        "failures": [c["name"] for c in failed],
        "checks": checks,
    }
