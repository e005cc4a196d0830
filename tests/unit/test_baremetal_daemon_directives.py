"""Generated named.conf and haproxy.cfg hold nothing newer daemons refuse.

BIND 9.20 removed the directives in BIND_REMOVED (most were deprecated in 9.16/9.18); HAProxy 3.3 refuses the
`program` section, proxies sharing a name (a frontend and a backend included) and two servers of one backend
with the same name, and long-removed keywords in HAPROXY_REMOVED. The roles' own templates are rendered for
the lab and the example inventories (and round robin), scanned, and checked by the installed daemons too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm

ROOT = Path(__file__).resolve().parents[2]
BIND_REMOVED = (
    "dnssec-enable",
    "dnssec-lookaside",
    "auto-dnssec",
    "alt-transfer-source",
    "alt-transfer-source-v6",
    "use-v4-udp-ports",
    "use-v6-udp-ports",
    "avoid-v4-udp-ports",
    "avoid-v6-udp-ports",
    "dialup",
    "heartbeat-interval",
    "glue-cache",
    "lock-file",
    "reserved-sockets",
    "keep-response-order",
    "resolver-nonbackoff-tries",
    "resolver-retry-interval",
)
HAPROXY_REMOVED = ("nbproc", "bind-process", "process", "monitor-net", "reqadd", "reqrep", "rspadd", "block")
PROXY_SECTIONS = ("frontend", "backend", "listen", "defaults")


def _vars(inventory: str) -> dict:
    return yaml.safe_load((ROOT / "inventories" / inventory / "group_vars" / "all" / "baremetal.yml").read_text())


def _defaults(role: str) -> dict:
    values = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    return {k: v for k, v in values.items() if not (isinstance(v, str) and "{{" in v)}


def _render(role: str, template: str, context: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT / "roles" / role / "templates")),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["bool"] = bool
    return env.get_template(template).render({"ansible_managed": "managed", **context})


def _site(inventory: str, round_robin: bool = False) -> dict:
    data = _vars(inventory)
    cluster = data["baremetal_cluster"]
    if round_robin:
        cluster = {k: v for k, v in cluster.items() if not k.endswith("_vip")} | {"load_balancer": "round_robin"}
    return bm.build_site(data["baremetal_hosts"], data["baremetal_networks"], cluster)


CASES = [("lab", False), ("example", False), ("example", True)]


def named_conf(inventory: str, round_robin: bool, tmp_path: Path) -> str:
    site = _site(inventory, round_robin)
    data = _vars(inventory)
    context = {
        **_defaults("dns"),
        **{k: v for k, v in data.items() if k.startswith("dns_") and "{{" not in str(v)},
        "dns_working_dir": str(tmp_path),
        "dns_run_dir": str(tmp_path),
        "dns_zone_dir": str(tmp_path),
        "dns_recursion": bool(data.get("dns_forwarders")),
        "dns_includes": [],
        "dns_controls": [],
        "dns_zones": bm.dns_zones(site, data["dns_nameservers"]),
    }
    return _render("dns", "named.conf.j2", context)


def haproxy_cfg(inventory: str, round_robin: bool) -> str:
    site = _site(inventory, round_robin)
    data = _vars(inventory)
    context = {
        **_defaults("haproxy"),
        **{k: v for k, v in data.items() if k.startswith("haproxy_") and "{{" not in str(v)},
        "haproxy_site": site,
        "haproxy_servers": bm.lb_servers(site) | data.get("haproxy_backend_servers", {}),
        "haproxy_cluster_ca_file": "/etc/ssl/certs/ca-certificates.crt",
        "haproxy_stats_password": "p" * 16,
    }
    return _render("haproxy", "haproxy.cfg.j2", context)


def _keywords(text: str, comment: str) -> set[str]:
    return {
        line.split()[0].rstrip(";")
        for line in text.splitlines()
        if line.split() and not line.lstrip().startswith(comment)
    }


@pytest.mark.parametrize(("inventory", "round_robin"), CASES)
def test_named_conf_has_nothing_bind_9_20_removed(inventory, round_robin, tmp_path):
    text = named_conf(inventory, round_robin, tmp_path)
    assert not _keywords(text, "//") & set(BIND_REMOVED)
    if shutil.which("named-checkconf"):
        path = tmp_path / "named.conf"
        path.write_text(text)
        result = subprocess.run(["named-checkconf", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("inventory", "round_robin"), CASES)
def test_haproxy_cfg_has_nothing_haproxy_3_3_refuses(inventory, round_robin, tmp_path):
    text = haproxy_cfg(inventory, round_robin)
    keywords = _keywords(text, "#")
    assert "program" not in keywords
    assert not keywords & set(HAPROXY_REMOVED)
    proxies = re.findall(rf"^({'|'.join(PROXY_SECTIONS)})\s+(\S+)", text, flags=re.MULTILINE)
    names = [name for _section, name in proxies]
    assert len(names) == len(set(names)), names
    for block in re.split(rf"^(?:{'|'.join(PROXY_SECTIONS)})\s", text, flags=re.MULTILINE):
        servers = re.findall(r"^\s+server\s+(\S+)", block, flags=re.MULTILINE)
        assert len(servers) == len(set(servers)), servers
    if shutil.which("haproxy"):
        path = tmp_path / "haproxy.cfg"
        path.write_text(text)
        result = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_round_robin_file_names_every_lb_host():
    text = haproxy_cfg("example", True)
    assert "# DNS round robin: api, api-int and *.apps name every load balancer (172.16.10.11, 172.16.10.12)" in text
