"""The mirror against the tools a user would pick instead: crane copy, regctl image copy, skopeo.

Same image set as bench_mirror (24 images, half two-platform indexes, shared base layers), one run, ROUNDS
rounds on fresh destination registries, the order of the tools rotated between rounds. crane and regctl are
built by lab/build-binaries.sh from their Go modules (pinned versions, the lab's binary cache).

Each peer copies image by image with its own parallel defaults ("default": one image after the other, the
tool's own concurrency inside an image) and at our parallelism ("p8": eight images at once). Ours runs with
its defaults (eight images and eight blobs at once). Warm: the same copy again onto the filled registry (ours
with the lock file the cold run wrote, as the mirror role runs it).

Our times are those of the mirroring call in a child process, as in bench_mirror; the interpreter's start-up
(ours_startup_s) is added in the _with_startup ratios, since every peer run includes its process start.

Prints (medians over the rounds, and the spread as _min/_max):
    mirror_cold_vs_crane / _regctl            peer wall time / ours (default peer parallelism), target >= 1.2
    mirror_cold_vs_crane_p8 / _regctl_p8      the same with the peer at our parallelism
    mirror_warm_vs_crane / _regctl            warm reruns, target >= 2
    mirror_cpu_vs_<peer>                      CPU seconds (client + source and destination registry) peer / ours
    mirror_cold_vs_skopeo_loop / _sync        as in bench_mirror
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mirror as common  # noqa: E402

SRC_PORT = 5101
ROUND_PORTS = {
    "ours": 5102,
    "crane": 5103,
    "crane_p8": 5104,
    "regctl": 5105,
    "regctl_p8": 5106,
    "loop": 5107,
    "sync": 5108,
}
ROUNDS = 3
PARALLEL = 8


def log(msg: str) -> None:
    print(f"[bench_mirror_peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    path = Path(os.environ.get("LAB_BIN", "")) / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make lab-binaries` (lab/build-binaries.sh builds {name})")
    return str(path)


def peer_env(home: Path, ca: str) -> dict[str, str]:
    """crane and regctl read credentials from a Docker config and trust the lab CA through SSL_CERT_FILE."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / "docker"),
        "SSL_CERT_FILE": ca,
    }


def copy_command(peer: str, source: str, target: str) -> list[str]:
    if peer == "crane":
        return [tool("crane"), "copy", source, target]
    return [tool("regctl"), "image", "copy", source, target]


def peer_copy(peer: str, refs: list[str], dest: str, env: dict[str, str], parallel: int) -> float:
    """Every image with `peer`, `parallel` images at once; wall seconds."""

    def one(ref: str) -> None:
        target = f"{dest}/site/{ref.split('/', 1)[1]}"
        proc = subprocess.run(copy_command(peer, ref, target), env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{peer} copy {ref} failed: {proc.stderr[-1500:]}")

    os.sync()
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as workers:
        list(workers.map(one, refs))
    return time.monotonic() - started


def measure(times: dict[str, float], key: str, meter: common.CpuMeter, run: Callable[[], float]) -> None:
    times[key] = run()
    times[f"cpu_{key}"] = meter.registries() + meter.child_processes()


def one_round(n: int, refs: list[str], host: dict[str, str], ctx: dict) -> dict[str, float]:
    daemons = common.start_registries(ctx["work"] / f"round{n}", ROUND_PORTS)
    times: dict[str, float] = {}
    src, env, base = ctx["src"], ctx["env"], ctx["base"]
    try:

        def ours() -> None:
            meter = common.CpuMeter(src, daemons["ours"])
            cold = common.ours({**base, "op": "mirror", "refs": refs, "dest": host["ours"]})
            times["cpu_ours"] = meter.registries() + cold["cpu"]
            warm = common.ours({**base, "op": "mirror", "refs": refs, "dest": host["ours"], "lock": cold["lock"]})
            times.update(ours=cold["seconds"], ours_warm=warm["seconds"], ours_startup=cold["startup"])

        def peer(name: str, parallel: int) -> Callable[[], None]:
            def run() -> None:
                key = name if parallel == 1 else f"{name}_p8"
                meter = common.CpuMeter(src, daemons[key])
                measure(times, key, meter, lambda: peer_copy(name, refs, host[key], env, parallel))
                if parallel == 1:
                    times[f"{name}_warm"] = peer_copy(name, refs, host[key], env, 1)

            return run

        def loop() -> None:
            meter = common.CpuMeter(src, daemons["loop"])
            cert_dir, auth, home = ctx["cert_dir"], ctx["auth"], ctx["home"]
            measure(times, "loop", meter, lambda: common.skopeo_loop(refs, host["loop"], cert_dir, auth, home))

        def sync() -> None:
            meter = common.CpuMeter(src, daemons["sync"])
            cert_dir, auth, home, work = ctx["cert_dir"], ctx["auth"], ctx["home"], ctx["work"]
            measure(
                times,
                "sync",
                meter,
                lambda: common.skopeo_sync(refs, host["src"], host["sync"], cert_dir, auth, home, work),
            )

        methods = [
            ours,
            peer("crane", 1),
            peer("regctl", 1),
            peer("crane", PARALLEL),
            peer("regctl", PARALLEL),
            loop,
            sync,
        ]
        shift = n * 3 % len(methods)
        for method in methods[shift:] + methods[:shift]:
            method()
    finally:
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(ctx["work"] / f"round{n}", ignore_errors=True)
    log(
        f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items() if not k.startswith("cpu_"))
        + "; CPU " + ", ".join(f"{k[4:]} {v:.2f}s" for k, v in times.items() if k.startswith("cpu_"))
    )  # fmt: skip
    return times


def ratios(rounds: list[dict[str, float]]) -> dict[str, list[float]]:
    """Each printed ratio, per round."""
    out: dict[str, list[float]] = {}
    for r in rounds:
        pairs = {
            "mirror_cold_vs_crane": r["crane"] / r["ours"],
            "mirror_cold_vs_crane_with_startup": r["crane"] / (r["ours"] + r["ours_startup"]),
            "mirror_cold_vs_regctl_with_startup": r["regctl"] / (r["ours"] + r["ours_startup"]),
            "mirror_cold_vs_regctl": r["regctl"] / r["ours"],
            "mirror_cold_vs_crane_p8": r["crane_p8"] / r["ours"],
            "mirror_cold_vs_regctl_p8": r["regctl_p8"] / r["ours"],
            "mirror_warm_vs_crane": r["crane_warm"] / r["ours_warm"],
            "mirror_warm_vs_regctl": r["regctl_warm"] / r["ours_warm"],
            "mirror_cpu_vs_crane": r["cpu_crane"] / r["cpu_ours"],
            "mirror_cpu_vs_regctl": r["cpu_regctl"] / r["cpu_ours"],
            "mirror_cpu_vs_crane_p8": r["cpu_crane_p8"] / r["cpu_ours"],
            "mirror_cpu_vs_regctl_p8": r["cpu_regctl_p8"] / r["cpu_ours"],
            "mirror_cpu_vs_skopeo_loop": r["cpu_loop"] / r["cpu_ours"],
            "mirror_cpu_vs_skopeo_sync": r["cpu_sync"] / r["cpu_ours"],
            "mirror_cold_vs_skopeo_loop": r["loop"] / r["ours"],
            "mirror_cold_vs_skopeo_sync": r["sync"] / r["ours"],
        }
        for key, value in pairs.items():
            out.setdefault(key, []).append(value)
    return out


def main() -> int:
    env = common.lab_env()
    os.environ.setdefault("LAB_BIN", env.get("LAB_BIN", ""))
    ca, user, password = env["LAB_CA"], env["REGISTRY_INTERNAL_USER"], env["REGISTRY_INTERNAL_PASSWORD"]
    work = Path(tempfile.mkdtemp(prefix="bench-mirror-peers-"))
    daemons = common.start_registries(work / "registries", {"src": SRC_PORT})
    try:
        host = {name: f"127.0.0.1:{port}" for name, port in {"src": SRC_PORT, **ROUND_PORTS}.items()}
        log("generating the image set")
        refs, _big = common.generate(common.Registry(host["src"], ca), host["src"])
        home = work / "home"
        (home / "docker").mkdir(parents=True)
        auth = common.authfile(home / "docker" / "config.json", list(host.values()), user, password)
        ctx = {"work": work, "src": daemons["src"], "env": peer_env(home, ca), "cert_dir": env["LAB_CA_DIR"],
               "auth": auth, "home": home, "base": {"ca": ca, "user": user, "password": password}}  # fmt: skip
        rounds = [one_round(n, refs, host, ctx) for n in range(ROUNDS)]
    finally:
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    for key, values in ratios(rounds).items():
        print(f"{key}: {statistics.median(values):.2f}")
        print(f"{key}_min: {min(values):.2f}")
        print(f"{key}_max: {max(values):.2f}")
    for key in rounds[0]:
        name = f"{key[4:]}_cpu_s" if key.startswith("cpu_") else f"{key}_s"
        print(f"{name}: {statistics.median(r[key] for r in rounds):.3f}")
    print(f"bench_images: {len(refs)}")
    print(f"bench_rounds: {ROUNDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
