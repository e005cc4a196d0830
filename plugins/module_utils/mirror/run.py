# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `image_mirror` module's work: module parameters -> discovery -> plan/copy/bundle -> lock file."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.airgap.renku.plugins.module_utils.common.files import write_atomic
from ansible_collections.airgap.renku.plugins.module_utils.common.kube_yaml import KubeYAMLError, dump_one, load_one
from ansible_collections.airgap.renku.plugins.module_utils.mirror.bundle import (
    export_bundle,
    import_bundle,
    verify_bundle,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import (
    Endpoint,
    MirrorResult,
    MirrorSettings,
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
from ansible_collections.airgap.renku.plugins.module_utils.mirror.lock import (
    LOCK_API_VERSION,
    LOCK_KIND,
    build_lock,
    dump_lock,
    merge_lock,
    read_lock,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import parse_image


class MirrorParamError(ValueError):
    """A module parameter is unusable; the message names it and the fix."""


def settings_from_params(params: Dict[str, Any]) -> MirrorSettings:
    credentials = {}
    for cred in params.get("source_credentials") or []:
        credentials[cred["registry"]] = Endpoint(
            cred["registry"], cred.get("ca_file"), cred.get("username"), cred.get("password")
        )
    destination = params.get("destination") or ""
    if "/" in destination or "://" in destination:
        raise MirrorParamError(f"destination {destination!r} must be a registry host[:port]; put paths in prefix")
    return MirrorSettings(
        destination=Endpoint(
            destination, params.get("ca_file"), params.get("destination_username"), params.get("destination_password")
        ),
        prefix=params.get("prefix") or "",
        keep_registry_host=params.get("keep_registry_host", True),
        source_rewrites=dict(params.get("source_rewrites") or {}),
        credentials=credentials,
        ca_file=params.get("ca_file"),
        platforms=list(params.get("platforms") or []),
        parallel=max(1, int(params.get("parallel") or 8)),
        refresh=bool(params.get("refresh", False)),
    )


def validate_params(params: Dict[str, Any]) -> None:
    mode = params["mode"]
    if mode in ("direct", "import") and not params.get("destination"):
        raise MirrorParamError(f"mode={mode} needs destination (the internal registry host[:port])")
    if mode in ("export", "import", "verify_bundle") and not params.get("bundle"):
        raise MirrorParamError(f"mode={mode} needs bundle (a directory or .tar path)")
    for image in params.get("images") or []:
        parse_image(image)  # raises ImageRefError naming the bad reference
    for source, target in (params.get("source_rewrites") or {}).items():
        if "://" in target or not target:
            raise MirrorParamError(f"source_rewrites[{source}]={target!r} must be host[:port][/path], no scheme")


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


def discover_images(params: Dict[str, Any], settings: MirrorSettings) -> Discovered:
    found = discover(
        params.get("charts") or [],
        params.get("manifest_files") or [],
        params.get("images") or [],
        params.get("pod_spec_paths") or [],
        params.get("image_fields") or [],
        helm=params.get("helm") or "helm",
        ca_file=params.get("ca_file"),
    )
    if found.candidates and params.get("confirm_candidates", True):
        pool = RegistryPool(settings)
        try:

            def exists(ref: str) -> bool:
                plan = locate(parse_image(ref), settings)
                return pool.get(plan.src_host).manifest_digest(plan.src_repo, plan.source.reference) is not None

            confirm_candidates(found, exists, settings.parallel)
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


def run(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Everything the module does; returns its result (without `changed` for the lock file)."""
    validate_params(params)
    settings = settings_from_params(params)
    progress = progress_writer(None if check_mode else params.get("progress_file"))
    mode = params["mode"]
    if mode == "verify_bundle":
        problems = verify_bundle(params["bundle"])
        return {"changed": False, "problems": problems, "failed_msg": "; ".join(problems) if problems else ""}
    if mode == "import":
        result = import_bundle(params["bundle"], settings, check_mode, params.get("verify") or "receipt", progress)
        return _shape(result, None, params, check_mode, settings)
    found = discover_images(params, settings)
    refs = sorted(found.images)
    if mode == "export":
        if check_mode:
            result = mirror_images(refs, settings, check_mode=True, progress=progress)
        else:
            result = export_bundle(refs, settings, params["bundle"], params.get("bundle_archive"), progress)
        return _shape(result, found, params, check_mode, settings)
    previous = read_lock_param(params.get("lock_file"))
    verify = params.get("verify") or "receipt"
    result = mirror_images(refs, settings, check_mode, False, progress, previous, verify)
    return _shape(result, found, params, check_mode, settings)


def _shape(
    result: MirrorResult,
    found: Optional[Discovered],
    params: Dict[str, Any],
    check_mode: bool,
    settings: MirrorSettings,
) -> Dict[str, Any]:
    lock = build_lock(lock_entries(result.plans))
    stats = result.stats.as_dict()
    if check_mode and params["mode"] == "export":
        stats["bytes_to_copy"] = sum(p.size for p in result.plans if not p.error)
    elif check_mode and params["mode"] != "import":
        pool = RegistryPool(settings)
        try:
            stats["bytes_to_copy"] = missing_bytes(result.plans, pool, settings.parallel)
        finally:
            pool.close()
    out: Dict[str, Any] = {
        "images": summarise(result.plans),
        "stats": stats,
        "lock": lock,
        "errors": result.errors,
        "warnings_found": list(found.warnings) if found else [],
        "discovered": dict(sorted(found.images.items())) if found else {},
        "rejected": dict(sorted(found.rejected.items())) if found else {},
    }
    if check_mode:
        out["changed"] = any(not p.error and not p.present for p in result.plans)
    elif params["mode"] == "export":
        out["changed"] = result.stats.blobs_copied > 0
    else:
        out["changed"] = result.stats.images_copied > 0
    if params.get("output_dir") and not result.errors and params["mode"] != "export":
        written = write_outputs(params, lock, check_mode)
        out["outputs"] = written
        out["changed"] = out["changed"] or any(f["changed"] for f in written)
    lock_file = params.get("lock_file")
    if lock_file and not result.errors:
        previous = read_lock_param(lock_file)
        _record_lock(out, lock_file, previous, merge_lock(previous, lock), check_mode)
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


def run_charts(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """The `chart_mirror` module's work: plan each chart, push (or download) what is missing, record it."""
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import oci_version

    if params.get("packages_dir"):
        params = dict(params, charts=packaged_charts(params["packages_dir"]))
    for chart in params["charts"]:
        oci_version(chart["version"])  # validate every version before touching anything
    run_one = _download_charts if params.get("download_dir") else _push_charts
    entries = run_one(params, check_mode)
    out: Dict[str, Any] = {"charts": entries, "changed": any(e["action"] != "present" for e in entries)}
    lock_file = params.get("lock_file")
    if lock_file:
        previous = read_lock_param(lock_file)
        recorded = [{k: v for k, v in e.items() if k != "action"} for e in entries]
        new = merge_lock(previous, {"apiVersion": LOCK_API_VERSION, "kind": LOCK_KIND, "charts": recorded})
        new.setdefault("images", [])
        _record_lock(out, lock_file, previous, new, check_mode)
    return out


def _push_charts(params: Dict[str, Any], check_mode: bool) -> List[Dict[str, Any]]:
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import plan_chart, push_chart
    from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import Registry

    dest = Registry(
        params["destination"],
        params.get("ca_file"),
        params.get("destination_username"),
        params.get("destination_password"),
    )
    entries = []
    try:
        for chart in params["charts"]:
            entry = plan_chart(chart, dest, params["destination"], params.get("prefix") or "")
            entry["action"] = "present" if entry.pop("present") else "push"
            if entry["action"] == "push" and not check_mode:
                entry["digest"] = push_chart(
                    chart,
                    entry,
                    params.get("helm") or "helm",
                    params.get("ca_file"),
                    params.get("destination_username"),
                    params.get("destination_password"),
                )
            entries.append(entry)
    finally:
        dest.close()
    return entries


def _download_charts(params: Dict[str, Any], check_mode: bool) -> List[Dict[str, Any]]:
    """Export side: packages (OCI-safe versions) and `charts.yaml` in `download_dir`."""
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import download_chart, plan_download

    directory = params["download_dir"]
    entries = []
    for chart in params["charts"]:
        entry = plan_download(chart, directory)
        entry["action"] = "present" if entry.pop("present") else "download"
        if entry["action"] == "download" and not check_mode:
            download_chart(chart, entry, params.get("helm") or "helm", params.get("ca_file"), directory)
        entries.append(entry)
    index = dump_one({"charts": [{k: v for k, v in e.items() if k != "action"} for e in entries]}, sort_keys=False)
    index_path = os.path.join(directory, "charts.yaml")
    current = None
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as handle:
            current = handle.read()
    if current != index:
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


def _chart_values(chart: Dict[str, Any], params: Dict[str, Any], home: str) -> Dict[str, Any]:
    import subprocess

    from ansible_collections.airgap.renku.plugins.module_utils.mirror.discover import (
        DiscoveryError,
        chart_source_args,
        helm_env,
    )

    cmd = [params.get("helm") or "helm", "show", "values", *chart_source_args(chart, params.get("ca_file"))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env(home), check=False)
    if proc.returncode != 0:
        raise DiscoveryError(f"helm show values {chart['chart']} failed: {proc.stderr.strip()[-1000:]}")
    try:
        return load_one(proc.stdout, f"helm show values {chart['chart']}") or {}
    except KubeYAMLError as exc:
        raise DiscoveryError(f"cannot read the output of {exc}") from exc


def output_files(params: Dict[str, Any], lock: Dict[str, Any]) -> Dict[str, str]:
    """Relative path -> content of every generated file (values overlays, containerd, CRI-O, CA)."""
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.charts import chart_name
    from ansible_collections.airgap.renku.plugins.module_utils.mirror.outputs import (
        containerd_hosts,
        crio_registries_conf,
        values_overlay,
    )

    files: Dict[str, str] = {}
    charts = params.get("charts") or []
    carried = os.path.join(params.get("bundle") or "", "charts")
    if not charts and params["mode"] == "import" and os.path.isfile(os.path.join(carried, "charts.yaml")):
        charts = packaged_charts(carried)
    with tempfile.TemporaryDirectory(prefix="mirror-values-") as home:
        for chart in charts:
            overlay, _used = values_overlay(_chart_values(chart, params, home), lock)
            header = f"# Generated from the mirror lock file: image values of {chart['chart']} pinned by digest.\n"
            files[f"values/{chart_name(chart)}.yaml"] = header + dump_one(overlay, sort_keys=False)
    node_ca = params.get("node_ca_path") or "/etc/containerd/certs.d/site-ca.crt"
    for path, content in containerd_hosts(lock, node_ca, "runtime/etc/containerd/certs.d").items():
        files[path] = content
    files["runtime/etc/containers/registries.conf.d/50-airgap-mirror.conf"] = crio_registries_conf(lock)
    if params.get("ca_file"):
        with open(params["ca_file"], encoding="utf-8") as handle:
            ca = handle.read()
        files["runtime" + node_ca] = ca
        files[f"runtime/etc/containers/certs.d/{params['destination']}/ca.crt"] = ca
    return files


def write_outputs(params: Dict[str, Any], lock: Dict[str, Any], check_mode: bool) -> List[Dict[str, Any]]:
    """Write the generated files under `output_dir` when their content differs; report each."""
    root = params["output_dir"]
    report = []
    for rel, content in sorted(output_files(params, lock).items()):
        path = os.path.join(root, rel)
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        changed = current != content
        if changed and not check_mode:
            _write_file(path, content)
        report.append({"path": path, "changed": changed})
    return report
