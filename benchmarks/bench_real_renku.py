#!/usr/bin/env python3
"""ca_inject and image discovery on the real Renku 2.19.3 chart, side by side with `helm template` in one run.

    ca_inject_real_renku_vs_helm_template   CA transform time / `helm template` time, same chart, same values
                                            (target <= 0.10); the transform is the text path the pipeline uses
    ca_inject_real_renku_parse_s            its split + selective YAML read
    ca_inject_real_renku_documents_path_s   the documents path (`output: documents`): every document parsed
    ca_inject_real_renku_parse_all_s        its YAML read (all 114 documents)
    discover_real_renku_ms                  image discovery over the documents of the render, in milliseconds
    discover_real_renku_images              distinct images + candidates that discovery found

The chart is the package of a Renku 2.19.3 install in the lab's reference data
(`<repo>/../shared/reference/charts/renku-2.19.3.tgz`, or $AIRGAP_REFERENCE_DIR/charts), rendered by the
lab's helm with the values the lab deploys with:

    helm template renku renku-2.19.3.tgz --namespace renku --include-crds
        --set global.renku.domain=renku.lab.internal --set 'global.certificates.customCAs[0].secret=renku-custom-ca'

"CA transform" is what the `ca_inject` module does with `manifest:` (Helm's standard output) and `output: manifest`,
as the helm_airgap role calls it: validate the CA (`ca.validate_cas`), then `inject.inject_manifest` (split the
text into documents, read as Kubernetes reads YAML only those that hold a pod template or may be a bundle object,
patch every pod template, emit the bundle objects with the system roots of `ca.default_system_bundle()`, write
the manifest back: untouched documents as their text, patched ones dumped), and the result's digest
(`inject.manifest_digest`). The documents path (`output: documents`) is timed too: every document read
(`kube_yaml.load_documents`), `ca.validate_cas`, `inject.inject`. The CA is the lab CA (.lab/pki/ca.crt), or a
throwaway CA generated here when the lab has none. `helm template` time is the wall time of the process. The three
alternate (text path, documents path, helm, text path ...) for ROUNDS rounds and the medians are compared, so
drift in the machine's speed lands on all alike; each path's YAML read is printed on its own line.

Discovery is `mirror.discover.scan_documents` over the parsed documents of the same render (the Kubernetes
reading and `helm template` are not counted: both are timed above), with the lab inventory's `image_fields`;
the median of DISCOVER_RUNS runs, each into a fresh result.
Exits non-zero when the chart package or helm is missing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build" / "collections"))
sys.path.insert(0, str(ROOT / "lab"))

import labcore  # noqa: E402

from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml, manifest_stream  # noqa: E402
from ansible_collections.airgap.renku.plugins.module_utils.mirror import discover as mirror_discover  # noqa: E402
from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject  # noqa: E402

CHART = labcore.REFERENCE_CHARTS / "renku-2.19.3.tgz"
VALUES = ["global.renku.domain=renku.lab.internal", "global.certificates.customCAs[0].secret=renku-custom-ca"]
IMAGE_FIELDS = ["AmaltheaSession:spec.session.image"]  # inventories/lab/group_vars/all/mirror.yml
ROUNDS = 15
DISCOVER_RUNS = 51


def helm_binary() -> str:
    helm = os.environ.get("HELM") or str(labcore.BIN / "helm")
    if not os.access(helm, os.X_OK):
        sys.exit(f"bench_real_renku: helm not found at {helm}; run `make lab-up` (it installs the lab's helm)")
    return helm


def chart_package() -> Path:
    if not CHART.is_file():
        sys.exit(
            f"bench_real_renku: the Renku 2.19.3 chart package is missing: {CHART} "
            "(shared/reference/charts beside the repository, or $AIRGAP_REFERENCE_DIR/charts)"
        )
    return CHART


def ca_pem() -> tuple[str, str]:
    """(PEM, where it came from): the lab CA, else a throwaway CA."""
    path = labcore.PKI / "ca.crt"
    if path.is_file():
        return path.read_text(), str(path)
    import labpki

    with tempfile.TemporaryDirectory(prefix="bench-ca-") as scratch:
        throwaway = labpki.LabCA(Path(scratch))  # the lab's own CA maker, in a scratch directory
        throwaway.ensure()
        return throwaway.cert_path.read_text(), "throwaway CA (no lab CA)"


def interleaved(actions: list[Callable[[], object]], runs: int) -> list[float]:
    """Medians of the actions timed in alternation, so drift in the machine's speed hits all alike."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for action, out in zip(actions, times, strict=True):
            start = time.perf_counter()
            action()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def ca_transform(manifest: str, pem: str, system_pem: str) -> dict:
    """What `ca_inject` does with `manifest:` and `output: manifest`."""
    options = inject.InjectOptions(namespace="renku")
    cas, _ = ca.validate_cas([("ca", pem)])
    result = inject.inject_manifest(manifest, cas, system_pem, options)
    result["digest"] = inject.manifest_digest(result["bundle"], result["parts"])
    return result


def selective_read_s(manifest: str) -> float:
    """Median time of the text path's split + selective read (the YAML share of `ca_transform`)."""
    kinds = inject.manifest_kinds(inject.InjectOptions(namespace="renku"))
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        manifest_stream.read(manifest, kinds, "manifest")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ca_transform_documents(manifest: str, pem: str, system_pem: str, parse_times: list[float]) -> dict:
    """What `ca_inject` does with `manifest:` and `output: documents`; the parse share goes to parse_times."""
    start = time.perf_counter()
    documents = kube_yaml.load_documents(manifest, "manifest")
    parse_times.append(time.perf_counter() - start)
    cas, _ = ca.validate_cas([("ca", pem)])
    return inject.inject(documents, cas, system_pem, inject.InjectOptions(namespace="renku"))


def discover(documents: list) -> mirror_discover.Discovered:
    found = mirror_discover.Discovered()
    mirror_discover.scan_documents(documents, found, [], IMAGE_FIELDS)
    return found


def discover_ms(documents: list) -> float:
    times = []
    for _ in range(DISCOVER_RUNS):
        start = time.perf_counter()
        discover(documents)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    helm, chart = helm_binary(), chart_package()
    argv = [helm, "template", "renku", str(chart), "--namespace", "renku", "--include-crds"]
    for value in VALUES:
        argv += ["--set", value]
    pem, pem_source = ca_pem()
    system_path = ca.default_system_bundle()
    if not system_path:
        sys.exit("bench_real_renku: no system CA bundle found (ca.default_system_bundle())")
    system_pem = Path(system_path).read_text(encoding="utf-8", errors="replace")

    with tempfile.TemporaryDirectory(prefix="bench-real-renku-") as home:
        env = mirror_discover.helm_env(home)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            sys.exit(f"bench_real_renku: helm template {chart} failed: {proc.stderr.strip()[-2000:]}")
        manifest = proc.stdout

        def render() -> None:
            subprocess.run(argv, capture_output=True, env=env, check=True)

        parse_times: list[float] = []
        result = ca_transform(manifest, pem, system_pem)  # warm-up; also the figures printed below
        full = ca_transform_documents(manifest, pem, system_pem, [])
        if result["report"] != full["report"] or result["bundle"] != full["bundle"]:
            sys.exit("bench_real_renku: the text path and the documents path disagree")
        transform_time, documents_time, helm_time = interleaved(
            [
                lambda: ca_transform(manifest, pem, system_pem),
                lambda: ca_transform_documents(manifest, pem, system_pem, parse_times),
                render,
            ],
            ROUNDS,
        )
    read_time = selective_read_s(manifest)
    parse_time = statistics.median(parse_times)

    documents = kube_yaml.load_documents(manifest, "helm template")
    found = discover(documents)
    images = set(found.images) | set(found.candidates)
    scan_ms = discover_ms(documents)

    print(
        f"[bench_real_renku] {chart}: {len(documents)} documents, {len(manifest)} bytes; CA: {pem_source};"
        f" system roots: {system_path}",
        file=sys.stderr,
        flush=True,
    )
    print(f"real_renku_documents: {len(documents)}")
    print(f"real_renku_pod_templates_patched: {len(result['report'])}")
    print(f"helm_template_real_renku_s: {helm_time:.4f}")
    print(f"ca_inject_real_renku_s: {transform_time:.4f}")
    print(f"ca_inject_real_renku_parse_s: {read_time:.4f}")
    print(f"ca_inject_real_renku_vs_helm_template: {transform_time / helm_time:.3f}")
    print(f"ca_inject_real_renku_documents_path_s: {documents_time:.4f}")
    print(f"ca_inject_real_renku_parse_all_s: {parse_time:.4f}")
    print(f"ca_inject_real_renku_documents_path_vs_helm_template: {documents_time / helm_time:.3f}")
    print(f"discover_real_renku_ms: {scan_ms:.2f}")
    print(f"discover_real_renku_images: {len(images)}")
    print(f"discover_real_renku_candidates: {len(set(found.candidates) - set(found.images))}")
    print(f"bench_real_renku_rounds: {ROUNDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
