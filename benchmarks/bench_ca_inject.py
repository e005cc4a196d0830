#!/usr/bin/env python3
"""ca_inject, side by side with `helm template` in one run, on the Renku-shaped fixture chart.

    ca_inject_vs_helm_template   inject time / `helm template` time, same chart, same documents (target <= 0.10)
    ca_inject_with_parse_vs_helm_template   the same, the YAML parsing of Helm's output included
    ca_inject_10k_vs_1k          inject time at 10,000 documents / at 1,000 (linear is 10; target <= 12)

The chart is rendered Renku-sized (`copies` of every service, about the 150-200 documents Renku's
chart renders). "Inject time" is the transform the module runs on the documents: validate the CA,
build the bundle from the system roots, patch every pod template, emit the bundle objects. Parsing
Helm's YAML text (PyYAML, C loader) is reported on its own line because it costs more than the
transform; the role hands the module the text, a caller with parsed documents does not pay it.
`helm template` time is the wall time of the process. Each figure is the median of several runs; the 1k and 10k runs alternate.
The 1k/10k inputs are the rendered documents repeated under new names.
"""

from __future__ import annotations

import copy
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build" / "collections"))
sys.path.insert(0, str(ROOT / "lab"))

from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject  # noqa: E402

CHART = ROOT / "tests" / "fixtures" / "charts" / "renku-like"
COPIES = 20
RUNS = 7


def helm_binary() -> str:
    import labcore

    return os.environ.get("HELM") or str(labcore.BIN / "helm")


def median_time(action: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(small: Callable[[], object], large: Callable[[], object], runs: int = 5) -> tuple[float, float]:
    """Medians of both actions timed in alternation, so drift in the machine's speed hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for action, out in ((small, times[0]), (large, times[1])):
            start = time.perf_counter()
            action()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def lab_ca() -> str:
    import labcore

    path = labcore.PKI / "ca.crt"
    if not path.exists():
        sys.exit("the lab CA is missing; run `make lab-up`")
    return path.read_text()


def parse(manifest: str) -> list[dict]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(manifest, Loader=loader) if d]


def inject_documents(documents: list[dict], ca_pem: str, system_pem: str) -> dict:
    cas, _ = ca.validate_cas([("ca", ca_pem)])
    return inject.inject(documents, cas, system_pem, inject.InjectOptions(namespace="renku"))


def scaled(documents: list[dict], count: int) -> list[dict]:
    out = []
    for index in range(count):
        doc = copy.deepcopy(documents[index % len(documents)])
        doc.setdefault("metadata", {})["name"] = f"{doc['metadata'].get('name', 'doc')}-{index}"
        out.append(doc)
    return out


def main() -> int:
    helm = helm_binary()
    argv = [helm, "template", "renku", str(CHART), "--namespace", "renku", "--set", f"copies={COPIES}"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    manifest = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    ca_pem = lab_ca()
    system_pem = Path(ca.default_system_bundle() or "/etc/ssl/certs/ca-certificates.crt").read_text()
    documents = [d for d in yaml.safe_load_all(manifest) if d]

    helm_time = median_time(lambda: subprocess.run(argv, capture_output=True, check=True, env=env))
    inject_time = median_time(lambda: inject_documents(documents, ca_pem, system_pem))
    parse_time = median_time(lambda: parse(manifest))

    cas, _ = ca.validate_cas([("ca", ca_pem)])
    options = inject.InjectOptions(namespace="renku")
    docs_1k, docs_10k = scaled(documents, 1000), scaled(documents, 10000)
    time_1k, time_10k = interleaved(
        lambda: inject.inject(docs_1k, cas, system_pem, options),
        lambda: inject.inject(docs_10k, cas, system_pem, options),
    )

    print(f"ca_inject_documents: {len(documents)}")
    print(f"helm_template_s: {helm_time:.4f}")
    print(f"ca_inject_s: {inject_time:.4f}")
    print(f"yaml_parse_s: {parse_time:.4f}")
    print(f"ca_inject_vs_helm_template: {inject_time / helm_time:.3f}")
    print(f"ca_inject_with_parse_vs_helm_template: {(inject_time + parse_time) / helm_time:.3f}")
    print(f"ca_inject_1k_s: {time_1k:.4f}")
    print(f"ca_inject_10k_s: {time_10k:.4f}")
    print(f"ca_inject_10k_vs_1k: {time_10k / time_1k:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
