"""Lab component: containerd (Debian's package) as a plain daemon with its own root, state and socket.

It plays a cluster node's container runtime for the mirror stage's generated configuration: `ctr image
pull --hosts-dir <generated certs.d>` of a public name must come from the internal registry, with the
site CA and the pull credentials. Nothing else in the lab uses it; the CRI plugin is disabled (no
kubelet talks to it). Exports LAB_CONTAINERD_SOCKET.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import labcore

ROOT = labcore.STATE / "containerd"
SOCKET = ROOT / "containerd.sock"
CONFIG = ROOT / "config.toml"


def write_config() -> None:
    ROOT.mkdir(parents=True, exist_ok=True)
    CONFIG.write_text(
        "version = 2\n"
        f'root = "{ROOT / "root"}"\n'
        f'state = "{ROOT / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{SOCKET}"\n'
        "[ttrpc]\n"
        f'  address = "{ROOT / "containerd.ttrpc.sock"}"\n'
        "[debug]\n"
        f'  address = "{ROOT / "debug.sock"}"\n'
    )


def healthy() -> bool:
    if not SOCKET.exists() or not shutil.which("ctr"):
        return False
    proc = subprocess.run(["ctr", "--address", str(SOCKET), "version"], capture_output=True, check=False)
    return proc.returncode == 0


def daemons(ca: labcore.LabCA) -> list[labcore.Daemon]:
    binary = shutil.which("containerd") or "/usr/bin/containerd"
    return [labcore.Daemon("containerd", [binary, "--config", str(CONFIG)], healthy, prepare=write_config)]


def env() -> dict[str, str]:
    return {"LAB_CONTAINERD_SOCKET": str(SOCKET)}
