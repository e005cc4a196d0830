"""The bare-metal model: validation messages, normalisation, zones and serials."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm

NETWORKS = [
    {
        "name": "machines",
        "subnet": "10.77.0.0/24",
        "gateway": "10.77.0.1",
        "dns_servers": ["10.77.0.1"],
        "dynamic_pool": {"start": "10.77.0.100", "end": "10.77.0.150"},
    },
    {"name": "edge", "subnet": "10.77.1.0/26", "gateway": "10.77.1.1", "dhcp": False},
]
CLUSTER = {"name": "lab", "base_domain": "airgap.test", "api_vip": "10.77.1.5", "ingress_vip": "10.77.1.6"}


def hosts() -> list[dict]:
    return [
        {
            "name": "bootstrap",
            "role": "bootstrap",
            "mac": "52:54:00:00:00:10",
            "ip": "10.77.0.20",
            "network": "machines",
        },
        {
            "name": "master-0",
            "role": "master",
            "mac": "52-54-00-00-00-21",
            "ip": "10.77.0.21",
            "network": "machines",
            "boot_mode": "uefi",
            "install_disk": "/dev/nvme0n1",
        },
        {"name": "master-1", "role": "master", "mac": "52:54:00:00:00:22", "ip": "10.77.0.22", "network": "machines"},
        {
            "name": "Master-2",
            "role": "master",
            "mac": "52:54:00:00:00:23",
            "ip": "10.77.0.23",
            "network": "machines",
            "boot_mode": "ipxe",
        },
        {"name": "worker-0", "role": "worker", "mac": "52:54:00:00:00:31", "ip": "10.77.0.31", "network": "machines"},
        {"name": "lb-0", "role": "lb", "mac": "52:54:00:00:01:10", "ip": "10.77.1.10", "network": "edge"},
    ]


def problems(host_list: list[dict], networks: list[dict] | None = None, cluster: dict | None = None) -> list[str]:
    with pytest.raises(bm.InventoryError) as err:
        bm.build_site(host_list, networks or NETWORKS, cluster or CLUSTER)
    return err.value.problems


def test_valid_site_is_normalised():
    site = bm.build_site(hosts(), NETWORKS, CLUSTER)
    master0 = site["hosts"][1]
    assert master0["mac"] == "52:54:00:00:00:21"
    assert master0["pxe_id"] == "01-52-54-00-00-00-21"
    assert master0["fqdn"] == "master-0.lab.airgap.test"
    assert site["hosts"][3]["name"] == "master-2"
    assert site["hosts"][0]["install_disk"] == "/dev/sda"
    assert site["cluster"]["api_int_vip"] == "10.77.1.5"
    assert site["networks"][0]["netmask"] == "255.255.255.0"
    assert site["hosts"][5]["pxe"] is False


def test_writeup_mistake_compute_hosts_sharing_one_address_is_reported_per_host():
    bad = hosts()
    for n in range(3):
        bad.append(
            {
                "name": f"compute-{n}",
                "role": "worker",
                "mac": f"52:54:00:00:02:{n:02x}",
                "ip": "10.77.0.40",
                "network": "machines",
            }
        )
    found = problems(bad)
    assert len(found) == 2
    assert all("ip: 10.77.0.40 is also used by hosts[6]" in p for p in found)
    assert 'hosts[7] "compute-1"' in found[0]
    assert 'hosts[8] "compute-2"' in found[1]


def test_every_problem_is_listed_in_one_error():
    bad = hosts()
    bad[0]["mac"] = "52:54:00:00:00:22"  # duplicate of master-1 (different case/separator still collides)
    bad[2]["mac"] = "52:54:00:00:00:22".upper()
    bad[4]["name"] = "worker_0"
    bad[4]["ip"] = "10.77.2.9"
    bad[5]["ip"] = "10.77.1.5"  # the API VIP
    bad.append(
        {"name": "pool-host", "role": "worker", "mac": "52:54:00:00:03:01", "ip": "10.77.0.120", "network": "machines"}
    )
    bad.append({"name": "gw", "role": "worker", "mac": "zz", "ip": "10.77.0.1", "network": "nowhere"})
    found = "\n".join(problems(bad))
    assert 'hosts[2] "master-1" mac: 52:54:00:00:00:22 is also used by hosts[0]' in found
    assert 'hosts[4] "worker_0" name: must be an RFC 1123 label' in found
    assert "10.77.2.9 is outside its network machines" in found
    assert "cluster api_vip: 10.77.1.5 is also the address of host lb-0" in found
    assert "inside the dynamic pool" in found
    assert "mac: 'zz' is not a MAC address" in found
    assert "network: 'nowhere' is not the name of a network" in found


def test_even_number_of_masters_is_refused():
    bad = [h for h in hosts() if h["name"] != "Master-2"]
    assert any("2 masters" in p for p in problems(bad))


def test_network_checks():
    nets = copy.deepcopy(NETWORKS)
    nets[0]["gateway"] = "10.78.0.1"
    nets[1]["subnet"] = "10.77.0.64/26"  # overlaps machines
    nets.append({"name": "broken", "subnet": "10.1.2.3/24"})
    found = "\n".join(problems(hosts(), nets))
    assert "gateway: '10.78.0.1' is not an address inside 10.77.0.0/24" in found
    assert "overlaps" in found
    assert "'10.1.2.3/24' is not an IPv4 network" in found


def test_cluster_checks():
    found = "\n".join(problems(hosts(), cluster={"name": "Bad_Name", "base_domain": "", "api_vip": "x"}))
    assert "cluster name" in found and "base_domain" in found and "api_vip" in found and "ingress_vip" in found


def test_reverse_zone_names():
    assert bm.reverse_zone_names("192.0.2.0/24") == ["2.0.192.in-addr.arpa"]
    assert bm.reverse_zone_names("10.20.0.0/16") == ["20.10.in-addr.arpa"]
    assert bm.reverse_zone_names("10.0.16.0/22") == [f"{n}.0.10.in-addr.arpa" for n in range(16, 20)]
    assert bm.reverse_zone_names("192.0.2.64/26") == ["64-26.2.0.192.in-addr.arpa"]
    assert bm.reverse_zone_names("10.0.0.0/7") == ["10.in-addr.arpa", "11.in-addr.arpa"]


def zones(settings: dict | None = None) -> dict[str, dict]:
    site = bm.build_site(hosts(), NETWORKS, CLUSTER)
    found = bm.dns_zones(site, [{"name": "ns1", "address": "10.77.0.1"}], settings)
    return {z["name"]: z for z in found}


def test_forward_zone_records():
    forward = zones({"etcd_records": True})["lab.airgap.test"]
    records = {(r["name"], r["type"], r["value"]) for r in forward["records"]}
    assert ("master-2", "A", "10.77.0.23") in records
    assert ("api", "A", "10.77.1.5") in records and ("api-int", "A", "10.77.1.5") in records
    assert ("*.apps", "A", "10.77.1.6") in records
    assert ("etcd-1", "A", "10.77.0.22") in records
    assert ("_etcd-server-ssl._tcp", "SRV", "0 10 2380 etcd-2.lab.airgap.test.") in records
    assert ("ns1", "A", "10.77.0.1") in records
    assert forward["mname"] == "ns1.lab.airgap.test." and forward["rname"] == "hostmaster.lab.airgap.test."
    assert not any(r[0].startswith("etcd") for r in {(r["name"],) for r in zones()["lab.airgap.test"]["records"]})


def test_reverse_zones_and_classless_delegation():
    found = zones({"classless_parent_zones": True})
    machines = found["0.77.10.in-addr.arpa"]
    assert {"name": "21", "type": "PTR", "value": "master-0.lab.airgap.test."} in machines["records"]
    classless = found["0-26.1.77.10.in-addr.arpa"]
    assert {"name": "10", "type": "PTR", "value": "lb-0.lab.airgap.test."} in classless["records"]
    assert {"name": "5", "type": "PTR", "value": "api.lab.airgap.test."} in classless["records"]
    parent = found["1.77.10.in-addr.arpa"]["records"]
    assert {"name": "10", "type": "CNAME", "value": "10.0-26.1.77.10.in-addr.arpa."} in parent
    assert {"name": "0-26", "type": "NS", "value": "ns1.lab.airgap.test."} in parent
    assert len([r for r in parent if r["type"] == "CNAME"]) == 64
    assert "1.77.10.in-addr.arpa" not in zones()


def test_serial_changes_only_with_content():
    first, again = zones(), zones()
    assert {n: z["serial"] for n, z in first.items()} == {n: z["serial"] for n, z in again.items()}
    changed = zones({"ttl": 60})
    assert changed["lab.airgap.test"]["serial"] != first["lab.airgap.test"]["serial"]
    assert all(1 <= z["serial"] < 2**31 for z in first.values())


def test_mac_helpers():
    assert bm.normalise_mac("AA-BB-CC-DD-EE-FF") == "aa:bb:cc:dd:ee:ff"
    assert bm.normalise_mac("aa:bb:cc:dd:ee") is None
    assert bm.pxe_id("aa:bb:cc:dd:ee:ff") == "01-aa-bb-cc-dd-ee-ff"


def test_lb_servers_bootstrap_toggle_and_ingress_fallback():
    site = bm.build_site(hosts(), NETWORKS, CLUSTER)
    during = bm.lb_servers(site, bootstrap=True)
    assert [s["name"] for s in during["api"]] == ["bootstrap", "master-0", "master-1", "master-2"]
    assert during["machine_config"][0] == {"name": "bootstrap", "address": "10.77.0.20", "port": 22623}
    after = bm.lb_servers(site, bootstrap=False)
    assert [s["name"] for s in after["api"]] == ["master-0", "master-1", "master-2"]
    assert [s["name"] for s in after["https"]] == ["worker-0"]  # no infra hosts: workers carry ingress
    with_infra = [
        *hosts(),
        {"name": "infra-0", "role": "infra", "mac": "52:54:00:00:00:41", "ip": "10.77.0.41", "network": "machines"},
    ]
    servers = bm.lb_servers(bm.build_site(with_infra, NETWORKS, CLUSTER))
    assert servers["http"] == [{"name": "infra-0", "address": "10.77.0.41", "port": 80}]


def test_example_inventory_is_valid_and_its_writeup_mistake_is_refused():
    example = yaml.safe_load(
        (Path(__file__).resolve().parents[4] / "inventories/example/group_vars/all/baremetal.yml").read_text()
    )
    site = bm.build_site(example["baremetal_hosts"], example["baremetal_networks"], example["baremetal_cluster"])
    roles = [h["role"] for h in site["hosts"]]
    assert [roles.count(r) for r in ("bootstrap", "master", "infra", "worker", "lb")] == [1, 3, 3, 5, 2]
    same = [dict(h, ip="172.16.10.41") if h["name"].startswith("compute") else h for h in example["baremetal_hosts"]]
    found = problems(same, example["baremetal_networks"], example["baremetal_cluster"])
    assert len(found) == 4 and all("is also used by hosts[7]" in p for p in found)
