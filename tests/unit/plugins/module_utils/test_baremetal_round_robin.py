"""Load balancers without a VIP: the seed 004 layout (api, api-int and *.apps round robin over the lb hosts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import check
from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm

# The example inventory carries the write-up's host list with its duplicate compute addresses corrected.
EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[4] / "inventories/example/group_vars/all/baremetal.yml").read_text()
)


def round_robin_cluster() -> dict:
    cluster = {k: v for k, v in EXAMPLE["baremetal_cluster"].items() if not k.endswith("_vip")}
    return {**cluster, "load_balancer": "round_robin"}


def build(hosts: list[dict], cluster: dict) -> dict:
    return bm.build_site(hosts, EXAMPLE["baremetal_networks"], cluster)


def problems(hosts: list[dict], cluster: dict) -> list[str]:
    with pytest.raises(bm.InventoryError) as err:
        build(hosts, cluster)
    return err.value.problems


def test_writeup_host_list_passes_in_the_round_robin_layout():
    site = build(EXAMPLE["baremetal_hosts"], round_robin_cluster())
    assert site["cluster"]["load_balancer"] == "round_robin"
    assert site["cluster"]["lb_addresses"] == ["172.16.10.11", "172.16.10.12"]
    assert site["cluster"]["api_vip"] == site["cluster"]["ingress_vip"] == ""


def test_writeup_layout_with_vips_on_the_lb_hosts_is_refused_with_the_way_out():
    cluster = {**EXAMPLE["baremetal_cluster"], "api_vip": "172.16.10.11", "ingress_vip": "172.16.10.12"}
    found = problems(EXAMPLE["baremetal_hosts"], cluster)
    assert found == [
        "cluster api_vip: 172.16.10.11 is also the address of host lb-0; use a free address, or set "
        "load_balancer: round_robin (and drop the VIPs) for one A record per lb host",
        "cluster api_int_vip: 172.16.10.11 is also the address of host lb-0; use a free address, or set "
        "load_balancer: round_robin (and drop the VIPs) for one A record per lb host",
        "cluster ingress_vip: 172.16.10.12 is also the address of host lb-1; use a free address, or set "
        "load_balancer: round_robin (and drop the VIPs) for one A record per lb host",
    ]


def test_vips_and_round_robin_are_mutually_exclusive():
    cluster = {**round_robin_cluster(), "api_vip": "172.16.10.10", "ingress_vip": "172.16.10.9"}
    assert problems(EXAMPLE["baremetal_hosts"], cluster) == [
        "cluster api_vip, ingress_vip: VIPs and round-robin load balancing are mutually exclusive; with "
        "load_balancer: round_robin, api, api-int and *.apps get one A record per lb host, so remove "
        "api_vip, ingress_vip (or set load_balancer: vip and keep the VIPs)"
    ]


def test_round_robin_needs_lb_hosts_and_a_known_mode():
    no_lbs = [h for h in EXAMPLE["baremetal_hosts"] if h["role"] != "lb"]
    assert problems(no_lbs, round_robin_cluster())[0].startswith(
        "cluster load_balancer: round_robin needs at least one host with role lb"
    )
    found = problems(EXAMPLE["baremetal_hosts"], {**round_robin_cluster(), "load_balancer": "anycast"})
    assert found[0].startswith("cluster load_balancer: 'anycast' is not one of vip, round_robin")


def test_dns_names_every_lb_host_and_no_vip_pointer():
    site = build(EXAMPLE["baremetal_hosts"], round_robin_cluster())
    forward, *reverse = bm.dns_zones(site, [{"name": "ns1", "address": "172.16.10.2"}])
    records = {(r["name"], r["value"]) for r in forward["records"] if r["type"] == "A"}
    for owner in ("api", "api-int", "*.apps"):
        assert {(owner, "172.16.10.11"), (owner, "172.16.10.12")} <= records
    pointers = {r["name"]: r["value"] for zone in reverse for r in zone["records"]}
    assert pointers["11"] == "lb-0.ocp.example.org." and pointers["12"] == "lb-1.ocp.example.org."
    assert "api.ocp.example.org." not in pointers.values()


def test_checker_and_load_balancer_follow_the_layout():
    site = build(EXAMPLE["baremetal_hosts"], round_robin_cluster())
    expected = {e["name"]: e["expected"] for e in check.dns_expected(site) if e["type"] == "A"}
    assert expected["api.ocp.example.org."] == ["172.16.10.11", "172.16.10.12"]
    assert expected["console-check.apps.ocp.example.org."] == ["172.16.10.11", "172.16.10.12"]
    ports = {"api": 6443, "https": 443}
    assert check.lb_expected(site, ports) == [
        {"name": "api", "address": "172.16.10.11", "port": 6443},
        {"name": "https", "address": "172.16.10.11", "port": 443},
        {"name": "api", "address": "172.16.10.12", "port": 6443},
        {"name": "https", "address": "172.16.10.12", "port": 443},
    ]
    with_vips = bm.build_site(EXAMPLE["baremetal_hosts"], EXAMPLE["baremetal_networks"], EXAMPLE["baremetal_cluster"])
    assert check.lb_expected(with_vips, ports) == [
        {"name": "api", "address": "172.16.10.10", "port": 6443},
        {"name": "https", "address": "172.16.10.9", "port": 443},
    ]
