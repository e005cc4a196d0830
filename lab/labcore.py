"""Shared pieces of the lab: paths, the Daemon process wrapper and health checks.

Components in `lab/components/*.py` import this module; each may define
`daemons(ca) -> list[Daemon]` (started after the core, together), `env() -> dict[str, str]`
(added to `make -s lab-env`) and `after_up(env) -> None` (runs once everything is healthy).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from labpki import LabCA, ensure_rsa_key, use_tls, write_private, write_public  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("AIRGAP_LAB_STATE", ROOT / ".lab"))
CACHE = Path(
    os.environ.get(
        "AIRGAP_LAB_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airgap-renku-lab"
    )
)
BIN = CACHE / "bin"
PKI = STATE / "pki"
RUN = STATE / "run"
LOG = STATE / "log"
CONNECTION_VARS = ROOT / "inventories" / "lab" / "group_vars" / "all" / "lab_connection.yml"
# Read-only reference data (upstream API specs, the chart packages of a Renku install): `shared/reference`
# beside the repository (CI clones put `shared/` beside the clone), or $AIRGAP_REFERENCE_DIR.
REFERENCE = Path(os.environ.get("AIRGAP_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))
REFERENCE_CHARTS = REFERENCE / "charts"


def reference_package(name: str, who: str) -> Path:
    """A chart package of shared/reference/charts; stops the lab part `who` with the fix when it is missing."""
    path = REFERENCE_CHARTS / name
    if not path.is_file():
        raise SystemExit(
            f"{who}: {path} is missing; the chart packages are expected in shared/reference/charts beside the "
            "repository (or $AIRGAP_REFERENCE_DIR/charts)"
        )
    return path


LOOPBACK = "127.0.0.1"
CLUSTERS = {
    # name: etcd client/peer ports, apiserver, controller-manager, scheduler, kwok ports
    "local": {"etcd": 23791, "peer": 23801, "api": 16443, "kcm": 10357, "sched": 10359, "kwok": 10361},
    "remote": {"etcd": 23792, "peer": 23802, "api": 26443, "kcm": 10457, "sched": 10459, "kwok": 10461},
}
REGISTRIES = {"upstream": 5001, "internal": 5002}
# The internal registry runs distribution v3, built by lab/build-binaries.sh; every other registry (upstream, the
# private ones tests start) runs Debian's docker-registry 2.8. Both keep the same storage layout.
REGISTRY_PROGRAMS = {"internal": "registry"}
DEBIAN_REGISTRY = "/usr/bin/docker-registry"
INTERNAL_USER = "lab-pusher"
KWOK_NODES = {
    "local": ["lab-local-node-0", "lab-local-node-1"],
    "remote": ["lab-remote-node-0", "lab-remote-node-1", "lab-remote-node-2"],
}
SERVICE_CIDR = "10.96.0.0/16"  # an allocation range only; nothing is ever sent to it


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# processes


@dataclass
class Daemon:
    """One lab process: how to start it and how to tell it is healthy."""

    name: str
    argv: list[str]
    health: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    optional: bool = False
    prepare: Callable[[], None] | None = None  # writes the files the program needs before it starts
    netns: str | None = None  # run inside this network namespace (`ip netns exec` execs in place)

    @property
    def pidfile(self) -> Path:
        return RUN / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid we started, if that process still runs the same program."""
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_runs(pid, self.argv[0]) else None

    def start(self) -> None:
        if self.pid() is not None:
            return
        if self.prepare:
            self.prepare()
        argv = ["ip", "netns", "exec", self.netns, *self.argv] if self.netns else self.argv
        LOG.mkdir(parents=True, exist_ok=True)
        RUN.mkdir(parents=True, exist_ok=True)
        with open(LOG / f"{self.name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env},
                cwd=STATE,
            )
        self.pidfile.write_text(str(proc.pid))
        if self.netns:  # until `ip` has exec'd the daemon, /proc/<pid>/exe still names `ip`
            deadline = time.monotonic() + 5
            while self.pid() is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self, timeout: float = 15.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            _reap(pid)
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True

    def healthy(self) -> bool:
        if self.pid() is None:
            return False
        try:
            return self.health()
        except (requests.RequestException, OSError, subprocess.SubprocessError):
            return False

    def log_tail(self, lines: int = 15) -> str:
        path = LOG / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def process_runs(pid: int, program: str) -> bool:
    """True while `pid` is a live (not zombie) process executing `program`."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.path.realpath(program)
    except OSError:
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def https_ok(url: str, statuses: tuple[int, ...] = (200,), cert: tuple[str, str] | None = None) -> Callable[[], bool]:
    def check() -> bool:
        with requests.Session() as session:
            session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace the lab CA
            resp = session.get(url, verify=str(PKI / "ca.crt"), cert=cert, timeout=2)
        return resp.status_code in statuses

    return check


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(url, timeout=2).status_code == 200

    return check


def binary(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise SystemExit(f"lab: {path} is missing; run `make lab-binaries` (lab/build-binaries.sh) first")
    return str(path.resolve())


def wait_healthy(group: list[Daemon], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(group)
    while pending and time.monotonic() < deadline:
        pending = [d for d in pending if not d.healthy()]
        for d in pending:
            if d.pid() is None:
                raise SystemExit(f"lab: {d.name} exited during start-up; last log lines:\n{d.log_tail()}")
        if pending:
            time.sleep(0.3)
    if pending:
        names = ", ".join(d.name for d in pending)
        raise SystemExit(f"lab: not healthy after {timeout:.0f}s: {names}\n{pending[0].log_tail()}")


# --------------------------------------------------------------------------------------------------
# registries


def registry_password() -> str:
    path = STATE / "registry-internal.password"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(18).encode())
    return path.read_text().strip()


def htpasswd_file(password: str) -> Path:
    path = STATE / "registry-internal.htpasswd"
    stamp = STATE / "registry-internal.htpasswd.for"
    if not path.exists() or not stamp.exists() or stamp.read_text() != INTERNAL_USER:
        line = subprocess.run(
            ["htpasswd", "-Bbn", INTERNAL_USER, password], check=True, capture_output=True, text=True
        ).stdout.strip()
        write_private(path, (line + "\n").encode())
        stamp.write_text(INTERNAL_USER)
    return path


def registry_config(name: str, port: int, crt: Path, key: Path, htpasswd: Path | None, root: Path) -> Path:
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"{LOOPBACK}:{port}",
            "secret": "lab-" + name,
            "tls": {"certificate": str(crt), "key": str(key)},
        },
    }
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": f"lab-{name}", "path": str(htpasswd)}}
    path = STATE / f"registry-{name}.yml"
    write_public(path, yaml.safe_dump(config).encode())
    return path


def registry_program(name: str) -> str:
    """The registry binary the lab registry `name` runs (see REGISTRY_PROGRAMS)."""
    built = REGISTRY_PROGRAMS.get(name)
    return binary(built) if built else DEBIAN_REGISTRY


def registry_daemon(ca: LabCA, name: str, port: int, auth: bool, root: Path | None = None) -> Daemon:
    """A registry (REGISTRY_PROGRAMS) with TLS from the lab CA; htpasswd auth when `auth`.

    The configuration is the subset distribution 2.8 and v3 read alike."""
    crt, key = ca.issue(f"registry-{name}", f"registry-{name}.lab", [LOOPBACK, "localhost", f"registry-{name}.lab"])
    root = root or STATE / f"registry-{name}"
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = htpasswd_file(registry_password()) if auth else None
    config = registry_config(name, port, crt, key, htpasswd, root)
    return Daemon(
        f"registry-{name}",
        [registry_program(name), "serve", str(config)],
        https_ok(f"https://{LOOPBACK}:{port}/v2/", (200, 401)),
        # v3 exports OpenTelemetry traces to an OTLP collector by default; the lab has none
        env={"OTEL_TRACES_EXPORTER": "none"},
    )


def referrers_registry_daemon(ca: LabCA, name: str, port: int, root: Path) -> Daemon:
    """A registry that serves the OCI 1.1 referrers API (lab/referrers-registry: go-containerregistry's registry,
    manifests in memory, blobs under `root`), TLS from the lab CA, the internal registry's account. For tests;
    lab up does not start it."""
    crt, key = ca.issue(f"registry-{name}", f"registry-{name}.lab", [LOOPBACK, "localhost", f"registry-{name}.lab"])
    root.mkdir(parents=True, exist_ok=True)
    argv = [binary("referrers-registry"), f"-addr={LOOPBACK}:{port}", f"-tls-cert={crt}", f"-tls-key={key}"]
    return Daemon(
        f"registry-{name}",
        [*argv, f"-blobs={root}", f"-user={INTERNAL_USER}"],
        https_ok(f"https://{LOOPBACK}:{port}/v2/", (200, 401)),
        env={"REGISTRY_PASSWORD": registry_password()},
    )
