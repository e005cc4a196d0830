"""The lab's bare-metal services: BIND, Kea and ISC dhcpd in network namespaces, TFTP, HTTP boot content, HAProxy.

The roles dns, dhcp_pxe and haproxy render their files into the lab state directory (see
inventories/lab/group_vars/all/baremetal.yml); this component runs the real daemons on those files.
Before the roles ran, each daemon starts on a minimal configuration written here (only when the file
does not exist yet), so `lab up` never depends on a playbook. Reloads go through the daemons' own
paths: `rndc reload` with a key, SIGUSR2 to the HAProxy master (a soft reload), Kea's control socket
(`config-reload`, sent by the dhcp_pxe role itself) and a dhcpd restart (dhcpd has no reload). `netlabctl` in
the state directory exposes the others to the roles' handlers:

    <state>/netlab/netlabctl reload haproxy | restart dhcpd | reload named

Kea, the lab's PXE server, answers in the namespace `airgap-netlab`; dhcpd, kept for its own tests, answers
the same site in `airgap-netlab-isc`. Each namespace has a bridge at 10.77.0.1/24; clients plug into one of
them. Everything else listens on loopback.
Run directly: `python lab/components/netlab.py up|status|serve-http|serve-backend ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from labcore import LOG, LOOPBACK, PKI, STATE, Daemon, LabCA, http_ok, log, use_tls, wait_healthy, write_public

NETNS = "airgap-netlab"  # Kea
NETNS_ISC = "airgap-netlab-isc"  # ISC dhcpd
BRIDGE = "nlbr0"
DUMMY = "nlkeep0"  # one end of a veth pair on the bridge: keeps its carrier up before clients plug in
SUBNET = "10.77.0.0/24"
NETMASK = "255.255.255.0"
GATEWAY = "10.77.0.1"
PORTS = {
    "dns": 15353,
    "rndc": 15953,
    "tftp": 16969,
    "http": 18081,
    "haproxy_stats": 19936,
    "lb_api": 19643,
    "lb_machine_config": 19623,
    "lb_https": 19443,
    "lb_http": 19080,
}
# small HTTP/HTTPS servers standing in for ingress routers behind HAProxy
BACKENDS = {"ingress-a": (19081, 19091), "ingress-b": (19082, 19092)}
RNDC_KEY_NAME = "netlab-rndc"

BIND = STATE / "bind"
DHCP = STATE / "dhcp"
TFTP = STATE / "tftp"
HTTP = STATE / "http"
HAPROXY = STATE / "haproxy"
CTL = STATE / "netlab" / "netlabctl"
KEA_SOCKET = DHCP / "kea4-ctrl.sock"


# --------------------------------------------------------------------------------------------------
# daemons with a preparation step and, optionally, a network namespace


class NetDaemon(Daemon):
    """A lab Daemon whose handlers reach it through the netlab control script, written before start."""

    def start(self) -> None:
        if self.pid() is None:
            write_ctl()
        super().start()


def _write_once(path: Path, text: str) -> None:
    """Bootstrap files only: once the roles have written a file, it is theirs."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_public(path, text.encode())


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def tcp_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True

    return check


# --------------------------------------------------------------------------------------------------
# named


def prepare_named() -> None:
    for d in (BIND, BIND / "zones", BIND / "work", BIND / "run"):
        d.mkdir(parents=True, exist_ok=True)
    key = BIND / "rndc.key"
    if not key.exists():
        _run("rndc-confgen", "-a", "-k", RNDC_KEY_NAME, "-c", str(key))
        key.chmod(0o600)
    _write_once(
        BIND / "rndc.conf",
        f'include "{key}";\noptions {{ default-key "{RNDC_KEY_NAME}"; default-server {LOOPBACK}; '
        f"default-port {PORTS['rndc']}; }};\n",
    )
    _write_once(
        BIND / "named.conf",
        f"""// bootstrap configuration; the dns role replaces it
options {{
    directory "{BIND / "work"}";
    pid-file "{BIND / "run" / "named.pid"}";
    session-keyfile "{BIND / "run" / "session.key"}";
    listen-on port {PORTS["dns"]} {{ {LOOPBACK}; }};
    listen-on-v6 {{ none; }};
    recursion no;
}};
include "{key}";
controls {{ inet {LOOPBACK} port {PORTS["rndc"]} allow {{ {LOOPBACK}; }} keys {{ "{RNDC_KEY_NAME}"; }}; }};
""",
    )


def rndc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rndc", "-c", str(BIND / "rndc.conf"), *args], capture_output=True, text=True, timeout=10)


def named_daemon() -> NetDaemon:
    return NetDaemon(
        "netlab-named",
        ["/usr/sbin/named", "-f", "-4", "-c", str(BIND / "named.conf")],
        lambda: rndc("status").returncode == 0,
        optional=True,
        prepare=prepare_named,
    )


# --------------------------------------------------------------------------------------------------
# DHCP servers in their namespaces


def ensure_netns(netns: str) -> None:
    """The namespace with a bridge at the gateway address; idempotent."""
    if netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        _run("ip", "netns", "add", netns)
    ns = ("ip", "-n", netns)
    listing = subprocess.run([*ns, "-o", "link", "show"], capture_output=True, text=True).stdout
    links = {line.split(":")[1].strip().split("@")[0] for line in listing.splitlines() if ":" in line}
    if BRIDGE not in links:
        _run(*ns, "link", "add", BRIDGE, "type", "bridge")
        _run(*ns, "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    if DUMMY not in links:
        _run(*ns, "link", "add", DUMMY, "type", "veth", "peer", "name", DUMMY + "p")
        _run(*ns, "link", "set", DUMMY, "master", BRIDGE)
    for link in ("lo", DUMMY, DUMMY + "p", BRIDGE):
        _run(*ns, "link", "set", link, "up")


def prepare_dhcpd() -> None:
    ensure_netns(NETNS_ISC)
    DHCP.mkdir(parents=True, exist_ok=True)
    (DHCP / "dhcpd.leases").touch()
    _write_once(
        DHCP / "dhcpd.conf",
        "# bootstrap configuration; the dhcp_pxe role replaces it\n"
        f"subnet {SUBNET.split('/')[0]} netmask {NETMASK} {{}}\n",
    )


def dhcpd_daemon() -> NetDaemon:
    return NetDaemon(
        "netlab-dhcpd",
        [
            "/usr/sbin/dhcpd",
            "-4",
            "-f",
            "-d",
            "-cf",
            str(DHCP / "dhcpd.conf"),
            "-lf",
            str(DHCP / "dhcpd.leases"),
            "-pf",
            str(DHCP / "dhcpd.pid"),
            BRIDGE,
        ],
        lambda: True,
        optional=True,
        prepare=prepare_dhcpd,
        netns=NETNS_ISC,
    )


def kea_command(command: str, socket_path: Path = KEA_SOCKET, timeout: float = 5.0) -> dict:
    """One command over Kea's control socket (a UNIX socket: reachable from outside the namespace)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(socket_path))
        conn.sendall(json.dumps({"command": command}).encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def _kea_answers() -> bool:
    return kea_command("version-get").get("result") == 0


def prepare_kea() -> None:
    ensure_netns(NETNS)
    DHCP.mkdir(parents=True, exist_ok=True)
    config = {
        "Dhcp4": {
            "interfaces-config": {"interfaces": [BRIDGE], "dhcp-socket-type": "raw"},
            "control-socket": {"socket-type": "unix", "socket-name": str(KEA_SOCKET)},
            "lease-database": {"type": "memfile", "persist": True, "name": str(DHCP / "kea-leases4.csv")},
            "subnet4": [{"id": 1, "subnet": SUBNET}],
        }
    }
    _write_once(
        DHCP / "kea-dhcp4.conf", "// bootstrap configuration; the dhcp_pxe role replaces it\n" + json.dumps(config)
    )


def kea_daemon() -> NetDaemon:
    return NetDaemon(
        "netlab-kea",
        ["/usr/sbin/kea-dhcp4", "-c", str(DHCP / "kea-dhcp4.conf")],
        _kea_answers,
        # Kea's pid and logger lock files go to the state directory, not to /run
        env={"KEA_PIDFILE_DIR": str(DHCP), "KEA_LOCKFILE_DIR": str(DHCP)},
        optional=True,
        prepare=prepare_kea,
        netns=NETNS,
    )


# --------------------------------------------------------------------------------------------------
# TFTP and HTTP boot content


def tftpd_daemon() -> NetDaemon:
    return NetDaemon(
        "netlab-tftpd",
        ["/usr/sbin/in.tftpd", "-L", "-u", "root", "-a", f"{LOOPBACK}:{PORTS['tftp']}", "-s", str(TFTP)],
        lambda: True,
        optional=True,
        prepare=lambda: TFTP.mkdir(parents=True, exist_ok=True),
    )


def http_daemon() -> NetDaemon:
    return NetDaemon(
        "netlab-http",
        [sys.executable, __file__, "serve-http", "--port", str(PORTS["http"]), "--dir", str(HTTP)],
        http_ok(f"http://{LOOPBACK}:{PORTS['http']}/"),
        optional=True,
        prepare=lambda: HTTP.mkdir(parents=True, exist_ok=True),
    )


# --------------------------------------------------------------------------------------------------
# HAProxy and its backends


def prepare_haproxy() -> None:
    HAPROXY.mkdir(parents=True, exist_ok=True)
    _write_once(
        HAPROXY / "haproxy.cfg",
        f"""# bootstrap configuration; the haproxy role replaces it
global
    log stderr format raw local0 info
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen stats
    bind {LOOPBACK}:{PORTS["haproxy_stats"]}
    stats enable
    stats uri /
    http-request deny
""",
    )


def haproxy_daemon() -> NetDaemon:
    return NetDaemon(
        "netlab-haproxy",
        [
            "/usr/sbin/haproxy",
            "-W",
            "-db",
            "-f",
            str(HAPROXY / "haproxy.cfg"),
            "-p",
            str(HAPROXY / "haproxy.pid"),
            "-S",
            f"{HAPROXY / 'master.sock'},mode,600",
        ],
        tcp_open(PORTS["haproxy_stats"]),
        optional=True,
        prepare=prepare_haproxy,
    )


def backend_daemons(ca: LabCA) -> list[NetDaemon]:
    crt, key = ca.issue("netlab-ingress", "ingress.netlab.lab", [LOOPBACK, "localhost"])
    return [
        NetDaemon(
            f"netlab-{name}",
            [
                sys.executable,
                __file__,
                "serve-backend",
                "--name",
                name,
                "--http-port",
                str(http_port),
                "--https-port",
                str(https_port),
                "--cert",
                str(crt),
                "--key",
                str(key),
            ],
            http_ok(f"http://{LOOPBACK}:{http_port}/healthz"),
            optional=True,
        )
        for name, (http_port, https_port) in BACKENDS.items()
    ]


# --------------------------------------------------------------------------------------------------
# component hooks


def daemons(ca: LabCA) -> list[Daemon]:
    return [
        named_daemon(),
        kea_daemon(),
        dhcpd_daemon(),
        tftpd_daemon(),
        http_daemon(),
        haproxy_daemon(),
        *backend_daemons(ca),
    ]


def env() -> dict[str, str]:
    return {
        "LAB_DNS": f"{LOOPBACK}:{PORTS['dns']}",
        "LAB_TFTP": f"{LOOPBACK}:{PORTS['tftp']}",
        "LAB_BOOT_HTTP": f"http://{LOOPBACK}:{PORTS['http']}",
        "LAB_NETNS": NETNS,
        "LAB_NETNS_ISC": NETNS_ISC,
        "LAB_KEA_SOCKET": str(KEA_SOCKET),
        "LAB_NETCTL": str(CTL),
    }


def after_up(env: dict[str, str]) -> None:
    write_ctl()


def write_ctl() -> None:
    """A small launcher with this machine's paths, kept in the state directory (never in the tree)."""
    CTL.parent.mkdir(parents=True, exist_ok=True)
    text = f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(Path(__file__).resolve())!r}\n"
    text += f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')\n"
    if not CTL.exists() or CTL.read_text() != text:
        CTL.write_text(text)
        CTL.chmod(0o755)


# --------------------------------------------------------------------------------------------------
# reload paths used by the roles' handlers


def _by_name(name: str) -> NetDaemon:
    found = {d.name: d for d in daemons(LabCA(PKI))}
    return found[f"netlab-{name}"]  # type: ignore[return-value]


def reload_haproxy() -> None:
    """Soft reload: the master re-reads the file and starts new workers; old ones finish their connections."""
    daemon = _by_name("haproxy")
    pid = daemon.pid()
    if pid is None:
        daemon.start()
        wait_healthy([daemon], timeout=20)
        return
    log_file = LOG / f"{daemon.name}.log"
    offset = log_file.stat().st_size if log_file.exists() else 0
    os.kill(pid, signal.SIGUSR2)
    # the master reports the outcome in its log; a failed load keeps the old workers, say so
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(log_file, errors="replace") as handle:
            handle.seek(offset)
            text = handle.read()
        if "Loading success" in text:
            return
        if "Loading failure" in text:
            raise SystemExit(f"haproxy reload failed; the previous configuration stays active:\n{text[-2000:]}")
        time.sleep(0.2)
    raise SystemExit("haproxy reload: no outcome in the master's log after 15s")


def restart_dhcpd() -> None:
    daemon = _by_name("dhcpd")
    daemon.stop()
    daemon.start()
    wait_healthy([daemon], timeout=20)


def reload_named() -> None:
    daemon = _by_name("named")
    if daemon.pid() is None:
        daemon.start()
        wait_healthy([daemon], timeout=30)
        return
    result = rndc("reload")
    if result.returncode != 0:
        raise SystemExit(f"rndc reload failed: {result.stdout}{result.stderr}")


def up() -> None:
    ca = LabCA(PKI)
    ca.ensure()
    group = daemons(ca)
    for d in group:
        if not d.healthy():
            d.start()
    wait_healthy(group, timeout=60)
    write_ctl()
    log("netlab is up")


# --------------------------------------------------------------------------------------------------
# the small servers


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def serve_http(port: int, directory: str) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=directory)
    http.server.ThreadingHTTPServer((LOOPBACK, port), handler).serve_forever()


def _backend_handler(name: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{name}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def serve_backend(name: str, http_port: int, https_port: int, cert: str, key: str) -> None:
    handler = _backend_handler(name)
    plain = http.server.ThreadingHTTPServer((LOOPBACK, http_port), handler)
    tls = http.server.ThreadingHTTPServer((LOOPBACK, https_port), handler)
    use_tls(tls, cert, key)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    plain.serve_forever()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up")
    sub.add_parser("status")
    sub.add_parser("reload").add_argument("daemon", choices=["haproxy", "named"])
    sub.add_parser("restart").add_argument("daemon", choices=["dhcpd"])
    serve = sub.add_parser("serve-http")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--dir", required=True)
    backend = sub.add_parser("serve-backend")
    backend.add_argument("--name", required=True)
    backend.add_argument("--http-port", type=int, required=True)
    backend.add_argument("--https-port", type=int, required=True)
    backend.add_argument("--cert", required=True)
    backend.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
    elif args.command == "status":
        bad = 0
        for d in daemons(LabCA(PKI)):
            ok = d.healthy()
            bad += 0 if ok else 1
            print(f"{d.name:20} {'healthy' if ok else 'NOT healthy'}  pid={d.pid() or '-'}")
        return 1 if bad else 0
    elif args.command == "reload":
        {"haproxy": reload_haproxy, "named": reload_named}[args.daemon]()
    elif args.command == "restart":
        restart_dhcpd()
    elif args.command == "serve-http":
        serve_http(args.port, args.dir)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            serve_backend(args.name, args.http_port, args.https_port, args.cert, args.key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
