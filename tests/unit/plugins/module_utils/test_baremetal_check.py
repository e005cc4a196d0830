"""The checker's verdicts: dig parsing, CNAME following, TFTP content, the report."""

from __future__ import annotations

from ansible_collections.airgap.renku.plugins.module_utils.baremetal import check
from ansible_collections.airgap.renku.plugins.module_utils.baremetal import site as bm

NETWORKS = [{"name": "n", "subnet": "192.0.2.0/24"}, {"name": "edge", "subnet": "198.51.100.64/26"}]
CLUSTER = {"name": "c", "base_domain": "example.org", "api_vip": "192.0.2.5", "ingress_vip": "192.0.2.6"}
HOSTS = [
    {"name": "m0", "role": "master", "mac": "aa:bb:cc:dd:ee:01", "ip": "192.0.2.10", "network": "n"},
    {
        "name": "w0",
        "role": "worker",
        "mac": "aa:bb:cc:dd:ee:02",
        "ip": "192.0.2.20",
        "network": "n",
        "boot_mode": "uefi",
    },
    {"name": "lb", "role": "lb", "ip": "198.51.100.70", "network": "edge"},
]
SITE = bm.build_site(HOSTS, NETWORKS, CLUSTER)
DIG = """\
m0.c.example.org.\t3600\tIN\tA\t192.0.2.10
w0.c.example.org.\t3600\tIN\tA\t192.0.2.99
lb.c.example.org.\t3600\tIN\tA\t198.51.100.70
api.c.example.org.\t3600\tIN\tA\t192.0.2.5
10.2.0.192.in-addr.arpa. 3600\tIN\tPTR\tm0.c.example.org.
70.100.51.198.in-addr.arpa. 3600 IN\tCNAME\t70.64-26.100.51.198.in-addr.arpa.
_etcd-server-ssl._tcp.c.example.org. 3600 IN SRV 0 10 2380 etcd-0.c.example.org.
;; a comment line
"""
SECOND = "70.64-26.100.51.198.in-addr.arpa. 3600 IN PTR lb.c.example.org.\n"


def test_dns_verdicts_follow_cnames_and_name_wrong_answers():
    expected = check.dns_expected(SITE, etcd_records=True)
    assert check.dig_arguments(expected)[:2] == ["m0.c.example.org.", "A"]
    answers = check.parse_dig(DIG)
    assert check.cname_targets(expected, answers) == ["70.64-26.100.51.198.in-addr.arpa."]
    results = {r["name"]: r for r in check.dns_results(expected, check.parse_dig(DIG, SECOND))}
    assert results["A m0.c.example.org."]["ok"]
    assert not results["A w0.c.example.org."]["ok"] and results["A w0.c.example.org."]["got"] == ["192.0.2.99"]
    assert results["PTR 70.100.51.198.in-addr.arpa. (via CNAME 70.64-26.100.51.198.in-addr.arpa.)"]["ok"]
    assert not results["PTR 20.2.0.192.in-addr.arpa."]["ok"]  # missing answer
    assert results["SRV _etcd-server-ssl._tcp.c.example.org."]["ok"]
    assert not results["A console-check.apps.c.example.org."]["ok"]


def test_tftp_expectations_commands_and_verdicts(tmp_path):
    expected = check.tftp_expected(SITE, "grub", {"master": "ignition/master.ign", "worker": "ignition/worker.ign"})
    assert [e["path"] for e in expected] == ["pxelinux.cfg/01-aa-bb-cc-dd-ee-01", "grub/grub.cfg-01-aa-bb-cc-dd-ee-02"]
    assert check.tftp_commands(expected).splitlines()[1] == "get pxelinux.cfg/01-aa-bb-cc-dd-ee-01 f0"
    (tmp_path / "f0").write_text("APPEND coreos.inst.ignition_url=http://x/ignition/master.ign install_dev=/dev/sda")
    (tmp_path / "f1").write_text("linux /images/kernel coreos.inst.ignition_url=http://x/ignition/master.ign")
    results = check.tftp_results(expected, str(tmp_path))
    assert results[0]["ok"]
    assert not results[1]["ok"] and "ignition/worker.ign" in results[1]["got"]


def test_http_ports_and_report():
    urls = check.http_urls(
        SITE, "http://192.0.2.2/", {"master": "ignition/master.ign", "worker": "ignition/worker.ign"}
    )
    assert urls == ["http://192.0.2.2/ignition/master.ign", "http://192.0.2.2/ignition/worker.ign"]
    http = check.http_results([{"item": urls[0], "status": 200}, {"item": urls[1], "status": 404}])
    ports = check.port_results(
        [
            {"item": {"name": "api", "port": 6443}},
            {"item": {"name": "http", "port": 80}, "failed": True, "msg": "timeout"},
        ],
        "192.0.2.5",
    )
    report = check.report(http, ports)
    assert report["total"] == 4 and report["failed"] == 2 and not report["ok"]
    assert report["by_check"] == {"http": {"passed": 1, "failed": 1}, "lb": {"passed": 1, "failed": 1}}
    assert report["failures"] == [f"HEAD {urls[1]}", "http 192.0.2.5:80"]
