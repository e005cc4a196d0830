# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bare-metal checker: what the site should answer, and the verdict on what it did answer.

Used by playbooks/check.yml: DNS (A, PTR, SRV) from batched `dig` output, per-MAC boot files fetched
over TFTP, HTTP HEAD of the boot content, load balancer ports. Each result is
{check, name, ok, expected, got}; `report` sums them up.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any


def dns_expected(site: dict, etcd_records: bool = False) -> list[dict]:
    """Every record a client will look up: A per host and VIP, PTR per host, the etcd SRV set."""
    cluster = site["cluster"]
    domain = cluster["domain"]
    expected = [{"type": "A", "name": f"{h['fqdn']}.", "expected": [h["ip"]]} for h in site["hosts"]]
    expected += [
        {"type": "A", "name": f"api.{domain}.", "expected": [cluster["api_vip"]]},
        {"type": "A", "name": f"api-int.{domain}.", "expected": [cluster["api_int_vip"]]},
        {"type": "A", "name": f"console-check.apps.{domain}.", "expected": [cluster["ingress_vip"]]},
    ]
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


def port_results(wait_results: list[dict], host: str = "") -> list[dict]:
    """Verdicts from the registered results of an ansible.builtin.wait_for loop over {name, port} items."""
    return [
        {
            "check": "lb",
            "name": f"{r['item']['name']} {host}:{r['item']['port']}",
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
