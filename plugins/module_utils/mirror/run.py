# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The work of `image_mirror` and `chart_mirror`: settings -> discovery -> plan/copy/bundle -> lock file.

The modules turn their parameters into settings.ImageMirrorSettings / ChartMirrorSettings once; nothing here
reads a parameter dict.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.airgap.renku.plugins.module_utils.common.files import write_atomic
from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import KubeYAMLError, dump_one, load_one
from ansible_collections.airgap.renku.plugins.module_utils.mirror.bundle import (
    export_bundle,
    export_space_needs,
    import_bundle,
    unpack_bundle,
    unpack_space_needs,
    verify_bundle,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import (
    CopyStats,
    MirrorResult,
    RegistryPool,
    locate,
    lock_entries,
    mirror_images,
    missing_bytes,
    summarise,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
    Discovered,
    confirm_candidates,
    discover,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.disk import check_free_space
from ansible_collections.airgap.renku.plugins.module_utils.mirror.lock import (
    LOCK_API_VERSION,
    LOCK_KIND,
    build_lock,
    dump_lock,
    merge_lock,
    read_lock,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.settings import (
    ChartMirrorSettings,
    ImageMirrorSettings,
    MirrorParamError,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import parse_image

__all__ = ["ChartMirrorSettings", "ImageMirrorSettings", "MirrorParamError", "run", "run_charts"]


def progress_writer(path: Optional[str]) -> Callable[[str], None]:
    """Progress lines appended to `path` (tail it while the module runs); silent without a path."""
    if not path:
        return lambda _msg: None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lock = threading.Lock()
    started = time.monotonic()

    def write(msg: str) -> None:
        with lock, open(path, "a", encoding="utf-8") as out:
            out.write(f"[{time.monotonic() - started:8.2f}s] {msg}\n")

    return write


def discover_images(settings: ImageMirrorSettings) -> Discovered:
    found = discover(
        list(settings.charts),
        list(settings.manifest_files),
        list(settings.images),
        list(settings.pod_spec_paths),
        list(settings.image_fields),
        helm=settings.helm,
        ca_file=settings.ca_file,
    )
    if found.candidates and settings.confirm_candidates:
        engine = settings.engine
        pool = RegistryPool(engine)
        try:

            def exists(ref: str) -> bool:
                plan = locate(parse_image(ref), engine)
                return pool.get(plan.src_host).manifest_digest(plan.src_repo, plan.source.reference) is not None

            confirm_candidates(found, exists, engine.parallel)
        finally:
            pool.close()
    elif found.candidates:
        found.images.update(found.candidates)
        found.candidates.clear()
    return found


def read_lock_param(path: Optional[str]) -> Dict[str, Any]:
    """The lock file named by the `lock_file` parameter ({} when there is none yet)."""
    try:
        return read_lock(path)
    except KubeYAMLError as exc:
        raise MirrorParamError(f"lock_file: {exc}") from exc


def _write_file(path: str, text: str) -> None:
    """Replace `path` with `text` (0644), creating its directory first."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, text)


def both(first: Callable[[str], None], second: Optional[Callable[[str], None]]) -> Callable[[str], None]:
    """One progress callback feeding two (the progress file and, when given, a live display)."""
    if second is None:
        return first

    def report(msg: str) -> None:
        first(msg)
        second(msg)

    return report


def run(
    settings: ImageMirrorSettings,
    check_mode: bool,
    stats: Optional[CopyStats] = None,
    on_progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Everything `image_mirror` does; returns its result (without `changed` for the lock file).

    `stats` is filled while the copy goes and `on_progress` gets every progress line as it happens (the
    action plugin's live display); the progress file is written either way."""
    progress = both(progress_writer(None if check_mode else settings.progress_file), on_progress)
    engine = settings.engine
    if settings.mode == "verify_bundle":
        problems = verify_bundle(settings.bundle)
        return {"changed": False, "problems": problems, "failed_msg": "; ".join(problems) if problems else ""}
    if settings.mode == "import":
        source = import_source(settings, check_mode, progress)
        result = import_bundle(source, engine, check_mode, settings.verify, progress, stats)
        return report_run(result, None, settings, check_mode)
    found = discover_images(settings)
    refs = sorted(found.images)
    if settings.mode == "export":
        if check_mode:
            result = mirror_images(refs, engine, check_mode=True, progress=progress, stats=stats)
            good = [p for p in result.plans if not p.error]
            check_free_space(export_space_needs(good, settings.bundle or "", settings.bundle_archive), "export")
        else:
            result = export_bundle(refs, engine, settings.bundle, settings.bundle_archive, progress, stats)
        return report_run(result, found, settings, check_mode)
    previous = read_lock_param(settings.lock_file)
    result = mirror_images(refs, engine, check_mode, False, progress, previous, settings.verify, stats)
    return report_run(result, found, settings, check_mode)


def import_source(settings: ImageMirrorSettings, check_mode: bool, progress: Callable[[str], None]) -> str:
    """The bundle an import reads: with `bundle_archive`, the archive unpacked into `bundle` first (after the
    disk check); check mode checks the space and plans from the archive itself."""
    bundle, archive = settings.bundle or "", settings.bundle_archive
    if not archive:
        return bundle
    if check_mode:
        check_free_space(unpack_space_needs(archive, bundle), "import (unpacking the archive)")
        return archive
    unpack_bundle(archive, bundle, progress)
    return bundle


def run_stats(result: MirrorResult, settings: ImageMirrorSettings, check_mode: bool) -> Dict[str, Any]:
    """The run's counters; in check mode also the bytes a real run would copy (asks the destination)."""
    stats = result.stats.as_dict()
    if check_mode and settings.mode == "export":
        stats["bytes_to_copy"] = sum(p.size for p in result.plans if not p.error)
    elif check_mode and settings.mode != "import":
        pool = RegistryPool(settings.engine)
        try:
            stats["bytes_to_copy"] = missing_bytes(result.plans, pool, settings.engine.parallel)
        finally:
            pool.close()
    return stats


def run_changed(result: MirrorResult, mode: str, check_mode: bool) -> bool:
    if check_mode:
        return any(not p.error and (not p.present or p.artifacts_missing) for p in result.plans)
    if mode == "export":
        return result.stats.blobs_copied > 0 or result.stats.artifacts_copied > 0
    return result.stats.images_copied > 0 or result.stats.artifacts_copied > 0


def report_run(
    result: MirrorResult, found: Optional[Discovered], settings: ImageMirrorSettings, check_mode: bool
) -> Dict[str, Any]:
    """The module result of a run; writes the files for later stages and the lock file when nothing failed."""
    lock = build_lock(lock_entries(result.plans))
    out: Dict[str, Any] = {
        "images": summarise(result.plans),
        "stats": run_stats(result, settings, check_mode),
        "lock": lock,
        "errors": result.errors,
        "warnings_found": list(found.warnings) if found else [],
        "discovered": dict(sorted(found.images.items())) if found else {},
        "rejected": dict(sorted(found.rejected.items())) if found else {},
        "changed": run_changed(result, settings.mode, check_mode),
    }
    if settings.output_dir and not result.errors and settings.mode != "export":
        written = write_outputs(settings, lock, check_mode)
        out["outputs"] = written
        out["changed"] = out["changed"] or any(f["changed"] for f in written)
    if settings.lock_file and not result.errors:
        previous = read_lock_param(settings.lock_file)
        _record_lock(out, settings.lock_file, previous, merge_lock(previous, lock), check_mode)
    return out


def _record_lock(
    out: Dict[str, Any], lock_file: str, previous: Optional[Dict[str, Any]], new: Dict[str, Any], check_mode: bool
) -> None:
    """Write the merged lock file when it differs; report the change and its diff in `out`."""
    before, after = dump_lock(previous) if previous else "", dump_lock(new)
    if before != after:
        out["changed"] = True
        out["diff"] = {"before": before, "after": after, "before_header": lock_file, "after_header": lock_file}
        if not check_mode:
            _write_file(lock_file, after)
    out["lock_file"] = lock_file


def run_charts(settings: ChartMirrorSettings, check_mode: bool) -> Dict[str, Any]:
    """The `chart_mirror` module's work: plan each chart, push (or download) what is missing, record it."""
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import oci_version, resolve_chart_ranges

    asked = tuple(packaged_charts(settings.packages_dir)) if settings.packages_dir else settings.charts
    previous = read_lock_param(settings.lock_file)
    indexes: Dict[str, Any] = {}  # classic repositories' index.yaml, read once each
    charts, drift = resolve_chart_ranges(asked, settings.ca_file, previous, settings.update_ranges, indexes)
    for chart in charts:
        oci_version(chart["version"])  # validate every version before touching anything
    if settings.download_dir:
        entries = _download_charts(tuple(charts), settings, settings.download_dir, check_mode)
    else:
        entries = _push_charts(tuple(charts), settings, check_mode, indexes)
    out: Dict[str, Any] = {"charts": entries, "changed": any(e["action"] != "present" for e in entries)}
    out["drift"] = drift
    if settings.lock_file:
        recorded = [{k: v for k, v in e.items() if k != "action"} for e in entries]
        new = merge_lock(previous, {"apiVersion": LOCK_API_VERSION, "kind": LOCK_KIND, "charts": recorded})
        new.setdefault("images", [])
        _record_lock(out, settings.lock_file, previous, new, check_mode)
    return out


def _push_charts(
    charts: Tuple[Dict[str, Any], ...], settings: ChartMirrorSettings, check_mode: bool, indexes: Dict[str, Any]
) -> List[Dict[str, Any]]:
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import (
        copy_oci_chart,
        oci_source,
        ordered_entry,
        plan_chart,
        push_chart,
    )
    from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Registry

    target = settings.destination
    dest = Registry(target.host, target.ca_file, target.username, target.password)
    entries = []
    try:
        for chart in charts:
            entry = plan_chart(chart, dest, target.host, target.prefix, target.ca_file, indexes)
            as_published = oci_source(chart) is not None and "repackaged" not in entry
            entry["action"] = "present" if entry.pop("present") else ("copy" if as_published else "push")
            if entry["action"] == "copy" and not check_mode:
                entry["digest"] = copy_oci_chart(chart, entry, dest, target.ca_file)
            elif entry["action"] == "push" and not check_mode:
                pushed = push_chart(chart, entry, settings.helm, target.ca_file, target.username, target.password, dest)
                # an OCI source's entry compares manifests (source_digest, digest), as its plan on the next run does
                entry.update({"digest": pushed["digest"]} if oci_source(chart) else pushed)
            entries.append(ordered_entry(entry))
    finally:
        dest.close()
    return entries


def _download_charts(
    charts: Tuple[Dict[str, Any], ...], settings: ChartMirrorSettings, directory: str, check_mode: bool
) -> List[Dict[str, Any]]:
    """Export side: packages (OCI-safe versions) and `charts.yaml` in `directory`."""
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import download_chart, plan_download

    entries = []
    for chart in charts:
        entry = plan_download(chart, directory)
        entry["action"] = "present" if entry.pop("present") else "download"
        if entry["action"] == "download" and not check_mode:
            download_chart(chart, entry, settings.helm, settings.ca_file, directory)
        entries.append(entry)
    index = dump_one({"charts": [{k: v for k, v in e.items() if k != "action"} for e in entries]}, sort_keys=False)
    index_path = os.path.join(directory, "charts.yaml")
    if _read_text(index_path) != index:
        if not check_mode:
            _write_file(index_path, index)
        entries = [dict(e, action=e["action"] if e["action"] != "present" else "index") for e in entries]
    return entries


def packaged_charts(directory: str) -> List[Dict[str, Any]]:
    """Chart parameters for the packages a bundle carries (listed in its `charts.yaml`)."""
    index = os.path.join(directory, "charts.yaml")
    if not os.path.isfile(index):
        raise MirrorParamError(f"packages_dir: {index} is missing; export the charts with download_dir first")
    try:
        with open(index, encoding="utf-8") as handle:
            entries = (load_one(handle, index) or {}).get("charts") or []
    except KubeYAMLError as exc:
        raise MirrorParamError(f"packages_dir: {exc}") from exc
    return [{"chart": os.path.join(directory, e["file"]), "name": e["name"], "version": e["version"]} for e in entries]


# --------------------------------------------------------------------------------------------------
# files later stages and node configuration use


def _read_text(path: str) -> Optional[str]:
    """The text of `path`, or None when there is no such file."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _chart_values(chart: Dict[str, Any], settings: ImageMirrorSettings, home: str) -> Dict[str, Any]:
    import subprocess

    from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
        DiscoveryError,
        chart_source_args,
        helm_env,
    )

    cmd = [settings.helm, "show", "values", *chart_source_args(chart, settings.ca_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env(home), check=False)
    if proc.returncode != 0:
        raise DiscoveryError(f"helm show values {chart['chart']} failed: {proc.stderr.strip()[-1000:]}")
    try:
        return load_one(proc.stdout, f"helm show values {chart['chart']}") or {}
    except KubeYAMLError as exc:
        raise DiscoveryError(f"cannot read the output of {exc}") from exc


def output_files(settings: ImageMirrorSettings, lock: Dict[str, Any]) -> Dict[str, str]:
    """Relative path -> content of every generated file (values overlays, containerd, CRI-O, CA)."""
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import chart_name
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.outputs import (
        containerd_hosts,
        crio_registries_conf,
        values_overlay,
    )

    files: Dict[str, str] = {}
    charts: List[Dict[str, Any]] = list(settings.charts)
    carried = os.path.join(settings.bundle or "", "charts")
    if not charts and settings.mode == "import" and os.path.isfile(os.path.join(carried, "charts.yaml")):
        charts = packaged_charts(carried)
    with tempfile.TemporaryDirectory(prefix="mirror-values-") as home:
        for chart in charts:
            overlay, _used = values_overlay(_chart_values(chart, settings, home), lock)
            header = f"# Generated from the mirror lock file: image values of {chart['chart']} pinned by digest.\n"
            files[f"values/{chart_name(chart)}.yaml"] = header + dump_one(overlay, sort_keys=False)
    node_ca = settings.node_ca_path
    for path, content in containerd_hosts(lock, node_ca, "runtime/etc/containerd/certs.d").items():
        files[path] = content
    files["runtime/etc/containers/registries.conf.d/50-airgap-mirror.conf"] = crio_registries_conf(lock)
    if settings.ca_file:
        with open(settings.ca_file, encoding="utf-8") as handle:
            ca = handle.read()
        files["runtime" + node_ca] = ca
        files[f"runtime/etc/containers/certs.d/{settings.destination.host}/ca.crt"] = ca
    return files


def write_outputs(settings: ImageMirrorSettings, lock: Dict[str, Any], check_mode: bool) -> List[Dict[str, Any]]:
    """Write the generated files under `output_dir` when their content differs; report each."""
    root = settings.output_dir or ""
    report = []
    for rel, content in sorted(output_files(settings, lock).items()):
        path = os.path.join(root, rel)
        changed = _read_text(path) != content
        if changed and not check_mode:
            _write_file(path, content)
        report.append({"path": path, "changed": changed})
    return report
