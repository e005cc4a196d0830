# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Portable bundles for sites where the connected and the offline side never meet.

A bundle is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`: every blob and
manifest stored once, named by its digest) plus `mirror-lock.yaml` and `SHA256SUMS` over every file.
It is a directory, or the same directory in an uncompressed tar (layers are compressed already).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Dict, List, Optional

from ansible_collections.airgap.renku.plugins.module_utils.common.files import atomic_write, write_atomic
from ansible_collections.airgap.renku.plugins.module_utils.mirror.artifacts import (
    Artifact,
    fetch_manifests,
    mark_present,
    taken,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.artifacts import push as push_artifacts
from ansible_collections.airgap.renku.plugins.module_utils.mirror.copy import (
    CopyStats,
    ImagePlan,
    MirrorResult,
    MirrorSettings,
    Progress,
    RegistryPool,
    locate,
    lock_entries,
    no_progress,
    plan_images,
    present_by_receipt,
    receipt_present,
    verify_images,
    write_receipt,
)
from ansible_collections.airgap.renku.plugins.module_utils.mirror.disk import allocated, check_free_space
from ansible_collections.airgap.renku.plugins.module_utils.mirror.lock import build_lock
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import parse_image
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    CHUNK,
    Manifest,
    RegistryError,
    manifest_blobs,
    read_views,
    stream_blob,
)

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None  # type: ignore[assignment]

LOCK_NAME = "mirror-lock.yaml"
SUMS_NAME = "SHA256SUMS"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
TAR_BLOCK = 512
# oci-layout, index.json, the lock file and SHA256SUMS (each briefly twice while it is replaced): a few
# hundred bytes per image and per blob, whole blocks each
METADATA_BASE, METADATA_PER_IMAGE = 64 * 1024, 2 * 1024
MEMBER_NAME = re.compile(r"^(?:blobs/sha256/[0-9a-f]{64}|(?:charts|git)/[A-Za-z0-9][A-Za-z0-9._+-]*)$")


class BundleError(Exception):
    """A bundle is incomplete, altered or not a bundle."""


def blob_path(digest: str) -> str:
    algorithm, _sep, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise BundleError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


# --------------------------------------------------------------------------------------------------
# export


def _write_blob_file(root: str, digest: str, chunks: Any) -> int:
    """Write a blob under its digest through a temporary name, checking the digest; returns bytes."""
    hasher, size = hashlib.sha256(), 0
    with atomic_write(os.path.join(root, blob_path(digest)), binary=True) as out:
        for chunk in chunks:
            hasher.update(chunk)
            size += len(chunk)
            out.write(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise BundleError(f"blob {digest}: downloaded bytes do not match the digest")
    return size


def _have_file(root: str, digest: str, size: Optional[int]) -> bool:
    path = os.path.join(root, blob_path(digest))
    return os.path.exists(path) and (size is None or os.path.getsize(path) == size)


def export_bundle(
    refs: List[str],
    settings: MirrorSettings,
    directory: str,
    archive: Optional[str] = None,
    progress: Progress = no_progress,
    stats: Optional[CopyStats] = None,
) -> MirrorResult:
    """Pull every image into `directory` (resumable: blobs already there are kept); optionally tar it.
    `stats`: counters to fill while the export goes."""
    started = time.monotonic()
    stats = stats if stats is not None else CopyStats()
    stats.images_total = len(dict.fromkeys(refs))
    pool = RegistryPool(settings)
    try:
        plans = plan_images(refs, settings, pool, progress)
        good = [p for p in plans if not p.error]
        for plan in good:  # a bundle carries every artifact, also those a destination named here has
            for art in plan.artifacts:
                fetch_manifests(art, pool.get(plan.src_host), plan.src_repo)
        stats.images_total = len(plans)
        check_free_space(export_space_needs(good, directory, archive), "export")
        files = _export_files(good).items()
        stats.add(bytes_planned=sum(size for digest, size in files if not _have_file(directory, digest, size)))
        os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
        _export_blobs(good, pool, directory, stats, settings.parallel, progress)
        for plan in good:
            for manifest in _plan_manifests(plan):
                if not _have_file(directory, manifest.digest, len(manifest.body)):
                    _write_blob_file(directory, manifest.digest, [manifest.body])
            stats.add(images_copied=1, artifacts_copied=len(plan.artifacts))
            progress(f"image {plan.source} -> {directory}@{plan.digest}")
    finally:
        pool.close()
    _write_index(directory, good)
    lock = build_lock(lock_entries(good))
    _write_text(directory, LOCK_NAME, yaml.safe_dump(lock, sort_keys=False))
    write_sums(directory)
    if archive:
        make_archive(directory, archive)
    stats.seconds = time.monotonic() - started
    progress(f"exported {len(good)} images, {stats.bytes_copied} bytes downloaded")
    return MirrorResult(plans, stats, [])


def _plan_manifests(plan: ImagePlan) -> List[Manifest]:
    """Every manifest a bundle holds for the image: its children, its top manifest, its artifacts'."""
    found = [m for m in [*plan.children, plan.top] if m is not None]
    return found + [m for art in plan.artifacts for m in art.manifests()]


def _plan_blobs(plan: ImagePlan) -> List[Dict[str, Any]]:
    """Descriptors of the image's blobs and its artifacts' blobs."""
    return plan.blobs() + [desc for art in plan.artifacts for desc in art.blobs()]


def _export_files(plans: List[ImagePlan]) -> Dict[str, int]:
    """Digest -> size of every blob and manifest the bundle holds for `plans`."""
    files: Dict[str, int] = {}
    for plan in plans:
        for desc in _plan_blobs(plan):
            files[desc["digest"]] = int(desc.get("size", 0))
        for manifest in _plan_manifests(plan):
            files[manifest.digest] = len(manifest.body)
    return files


def _tar_size(size: int) -> int:
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def export_space_needs(plans: List[ImagePlan], directory: str, archive: Optional[str] = None) -> Dict[str, int]:
    """Bytes an export of `plans` writes, by target directory: the blobs and manifests the bundle directory
    lacks, and with `archive` the whole bundle once more as a tar (directories on one file system add up)."""
    files = _export_files(plans)
    missing = [size for digest, size in files.items() if not _have_file(directory, digest, size)]
    metadata = METADATA_BASE + METADATA_PER_IMAGE * len(plans)
    needs = {directory: allocated(missing, directory) + metadata}
    if archive:
        extra = [os.path.getsize(os.path.join(directory, n)) for n in _extra_files(directory)]
        sizes = [*files.values(), *extra]
        total = sum(_tar_size(size) for size in sizes) + metadata
        target = os.path.dirname(os.path.abspath(archive))
        needs[target] = needs.get(target, 0) + total
    return needs


def _export_blobs(
    plans: List[ImagePlan], pool: RegistryPool, root: str, stats: CopyStats, parallel: int, progress: Progress
) -> None:
    wanted: Dict[str, tuple] = {}
    for plan in plans:
        for desc in _plan_blobs(plan):
            wanted.setdefault(desc["digest"], (plan, desc))

    def one(item: tuple) -> None:
        digest, (plan, desc) = item
        if _have_file(root, digest, desc.get("size")):
            stats.add(blobs_present=1)
            return
        resp, chunks = stream_blob(pool.get(plan.src_host), plan.src_repo, digest, desc.get("size"))
        try:
            size = _write_blob_file(root, digest, chunks)
        finally:
            resp.close()
        stats.add(blobs_copied=1, bytes_copied=size)
        progress(f"blob {digest[:19]} ({size} bytes)")

    with ThreadPoolExecutor(max_workers=parallel) as workers:
        list(workers.map(one, wanted.items()))


def _write_text(root: str, name: str, text: str) -> None:
    write_atomic(os.path.join(root, name), text)


def _write_index(root: str, plans: List[ImagePlan]) -> None:
    manifests = [
        {
            "mediaType": p.media_type,
            "digest": p.digest,
            "size": len(p.top.body) if p.top else 0,
            "annotations": {REF_ANNOTATION: str(p.source)},
        }
        for p in sorted(plans, key=lambda p: str(p.source))
    ]
    _write_text(root, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}))
    _write_text(root, "index.json", json.dumps({"schemaVersion": 2, "manifests": manifests}, indent=2))


def _file_sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def write_sums(root: str) -> None:
    """SHA256SUMS over every file; blobs are named by their verified digest, so not re-read."""
    lines = []
    for name in ("oci-layout", "index.json", LOCK_NAME):
        lines.append(f"{_file_sha256(os.path.join(root, name))}  {name}")
    for name in _extra_files(root):
        lines.append(f"{_file_sha256(os.path.join(root, name))}  {name}")
    blob_dir = os.path.join(root, "blobs", "sha256")
    for hexdigest in sorted(os.listdir(blob_dir)):
        if len(hexdigest) == 64:
            lines.append(f"{hexdigest}  blobs/sha256/{hexdigest}")
    _write_text(root, SUMS_NAME, "\n".join(lines) + "\n")


def _extra_files(root: str) -> List[str]:
    """Files other parts of a bundle put in it: charts exported by `chart_mirror`, repositories
    exported by `git_mirror` (written before the images, so these checksums cover them)."""
    found = []
    for sub in ("charts", "git"):
        directory = os.path.join(root, sub)
        if os.path.isdir(directory):
            found += [
                f"{sub}/{n}"
                for n in sorted(os.listdir(directory))
                if not n.startswith(".") and not n.endswith(".partial") and os.path.isfile(os.path.join(directory, n))
            ]
    return found


def make_archive(directory: str, archive: str) -> None:
    with (
        atomic_write(archive, binary=True) as out,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in (SUMS_NAME, LOCK_NAME, "oci-layout", "index.json", *_extra_files(directory)):
            tar.add(os.path.join(directory, name), arcname=name)
        for hexdigest in sorted(os.listdir(os.path.join(directory, "blobs", "sha256"))):
            if len(hexdigest) == 64:
                tar.add(os.path.join(directory, "blobs", "sha256", hexdigest), arcname=f"blobs/sha256/{hexdigest}")


# --------------------------------------------------------------------------------------------------
# reading a bundle (directory or tar)


class Bundle:
    """Read access to a bundle directory or archive."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tar: Optional[tarfile.TarFile] = None
        self._members: Dict[str, tarfile.TarInfo] = {}
        self._lock = threading.Lock()
        if os.path.isfile(path):
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed in close()
            self._members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
        elif not os.path.isdir(path):
            raise BundleError(f"{path} is neither a bundle directory nor a bundle archive")

    def close(self) -> None:
        if self._tar:
            self._tar.close()

    def exists(self, name: str) -> bool:
        return name in self._members if self._tar else os.path.isfile(os.path.join(self.path, name))

    def open(self, name: str) -> IO[bytes]:
        if self._tar is None:
            return open(os.path.join(self.path, name), "rb")
        if name not in self._members:
            raise BundleError(f"{self.path}: {name} is missing")
        with self._lock:  # the archive's file offset is shared
            handle = self._tar.extractfile(self._members[name])
            data = handle.read() if self._members[name].size <= CHUNK else None
        if data is not None:
            import io

            return io.BytesIO(data)
        return _TarSlice(self.path, self._members[name])

    def read(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def chunks(self, name: str) -> Any:
        """The member's bytes as views of this thread's reusable buffer (see `read_views`)."""
        with self.open(name) as handle:
            yield from read_views(handle.readinto)

    def size(self, name: str) -> int:
        if self._tar is None:
            return os.path.getsize(os.path.join(self.path, name))
        if name not in self._members:
            raise BundleError(f"{self.path}: {name} is missing")
        return self._members[name].size

    def lock(self) -> Dict[str, Any]:
        return yaml.safe_load(self.read(LOCK_NAME)) or {}

    def manifest(self, digest: str, media_type: str = "") -> Manifest:
        body = self.read(blob_path(digest))
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise BundleError(f"manifest {digest} in the bundle is altered")
        declared = json.loads(body).get("mediaType") or media_type
        return Manifest(body, declared, digest)


class _TarSlice:
    """A large tar member read through its own file handle (threads do not share offsets)."""

    def __init__(self, path: str, member: tarfile.TarInfo) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()/__exit__
        self._file.seek(member.offset_data)
        self._left = member.size

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._file.read(size)
        self._left -= len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        count = self._file.readinto(buffer[: min(len(buffer), self._left)]) if self._left else 0
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _TarSlice:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def verify_bundle(path: str) -> List[str]:
    """Every file against SHA256SUMS, and every file SHA256SUMS names present: problems found."""
    bundle = Bundle(path)
    problems = []
    try:
        if not bundle.exists(SUMS_NAME):
            return [f"{path}: {SUMS_NAME} is missing"]
        for line in bundle.read(SUMS_NAME).decode().splitlines():
            expected, _sep, name = line.partition("  ")
            if not bundle.exists(name):
                problems.append(f"{name}: missing")
                continue
            hasher = hashlib.sha256()
            for chunk in bundle.chunks(name):
                hasher.update(chunk)
            if hasher.hexdigest() != expected:
                problems.append(f"{name}: checksum mismatch")
    finally:
        bundle.close()
    return problems


# --------------------------------------------------------------------------------------------------
# import


def _unpack_todo(tar: tarfile.TarFile, directory: str) -> List[tarfile.TarInfo]:
    """The archive's files `directory` lacks (a file there with the member's size counts as present)."""
    todo = []
    for member in tar.getmembers():
        if member.isdir():
            continue
        known = member.name in (SUMS_NAME, LOCK_NAME, "oci-layout", "index.json") or MEMBER_NAME.match(member.name)
        if not member.isfile() or not known:
            raise BundleError(f"{tar.name}: {member.name!r} is not part of a bundle")
        path = os.path.join(directory, member.name)
        if not (os.path.isfile(path) and os.path.getsize(path) == member.size):
            todo.append(member)
    return todo


def unpack_space_needs(archive: str, directory: str) -> Dict[str, int]:
    """Bytes unpacking `archive` into `directory` writes."""
    with tarfile.open(archive, "r:") as tar:
        return {directory: allocated([m.size for m in _unpack_todo(tar, directory)], directory)}


def unpack_bundle(archive: str, directory: str, progress: Progress = no_progress) -> int:
    """Unpack a bundle archive into `directory` after checking its free space; resumable (files already
    there are kept), each file written whole or not at all. Returns the bytes written."""
    with tarfile.open(archive, "r:") as tar:
        todo = _unpack_todo(tar, directory)
        check_free_space({directory: allocated([m.size for m in todo], directory)}, "import (unpacking the archive)")
        written = 0
        for member in todo:
            path = os.path.join(directory, member.name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise BundleError(f"{archive}: cannot read {member.name}")
            with source, atomic_write(path, binary=True) as out:
                shutil.copyfileobj(source, out, CHUNK)
            written += member.size
    progress(f"unpacked {len(todo)} files ({written} bytes) from {archive} into {directory}")
    return written


def import_bundle(
    path: str,
    settings: MirrorSettings,
    check_mode: bool = False,
    verify: str = "receipt",
    progress: Progress = no_progress,
    stats: Optional[CopyStats] = None,
) -> MirrorResult:
    """Push a bundle's images to the destination: blobs, child manifests by digest, tag last.

    `verify` as for `mirror_images`: the bundle's lock pins the whole set, so V(receipt) first asks the
    destination for the receipt of exactly that set (one request) and trusts it when present.
    `stats`: counters to fill while the import goes.
    """
    started = time.monotonic()
    stats = stats if stats is not None else CopyStats()
    bundle = Bundle(path)
    pool = RegistryPool(settings)
    try:
        pool.get(settings.destination.host).ping()  # settle auth once, before the workers start
        plans = _plans_from_bundle(bundle, settings)
        stats.images_total = len(plans)
        if verify == "receipt" and receipt_present(plans, settings, pool):
            return present_by_receipt(plans, stats, started, progress)
        dest_present = _present(plans, pool, settings.parallel)
        todo = [p for p, present in zip(plans, dest_present, strict=True) if not present]
        for plan, present in zip(plans, dest_present, strict=True):
            plan.present = present
        stats.images_present = len(plans) - len(todo)
        stats.artifacts_present = sum(len(p.artifacts) - len(p.artifacts_missing) for p in plans)
        stats.add(bytes_planned=sum(p.size for p in todo))
        problems: List[str] = []
        if not check_mode:
            problems += _push_from_bundle(plans, bundle, pool, stats, settings.parallel, progress)
            full = verify == "full"
            check = plans if full else [p for p in plans if (not p.present or p.artifacts_missing) and not p.error]
            problems += verify_images(check, pool, stats, settings.parallel, blobs=full)
            if not problems and not any(p.error for p in plans):
                stats.receipt = write_receipt(plans, settings, pool)
    finally:
        pool.close()
        bundle.close()
    stats.seconds = time.monotonic() - started
    return MirrorResult(plans, stats, problems)


def _bundle_artifacts(bundle: Bundle, entry: Dict[str, Any], mode: str) -> List[Artifact]:
    """The artifacts the bundle's lock records for an image that `mode` takes, their manifests read."""
    found = []
    for record in entry.get("artifacts") or []:
        art = Artifact.from_record(record)
        if not taken(art, mode):
            continue
        art.manifest = bundle.manifest(art.digest, art.media_type)
        if art.manifest.is_index:
            art.children = [
                bundle.manifest(m["digest"], m.get("mediaType", "")) for m in art.manifest.json()["manifests"]
            ]
        found.append(art)
    return found


def _plans_from_bundle(bundle: Bundle, settings: MirrorSettings) -> List[ImagePlan]:
    plans = []
    for entry in bundle.lock().get("images") or []:
        plan = locate(parse_image(entry["source"]), settings)
        plan.top = bundle.manifest(entry["digest"], entry.get("media_type", ""))
        plan.digest, plan.media_type = plan.top.digest, plan.top.media_type
        if plan.top.is_index:
            plan.children = [bundle.manifest(m["digest"], m.get("mediaType", "")) for m in plan.top.json()["manifests"]]
        else:
            plan.children = [plan.top]
        plan.platforms = dict(entry.get("platforms") or {})
        plan.size = int(entry.get("size", 0))
        plan.filtered = bool(entry.get("platforms_filtered"))
        plan.artifacts = _bundle_artifacts(bundle, entry, settings.artifacts)
        plans.append(plan)
    return plans


def _present(plans: List[ImagePlan], pool: RegistryPool, parallel: int) -> List[bool]:
    """Whether the destination has each image under its tag; marks the artifacts it has."""

    def one(plan: ImagePlan) -> bool:
        dest = pool.get(plan.dest_host)
        if plan.artifacts:
            mark_present(plan.artifacts, dest, plan.dest_repo, plan.digest)
        return dest.manifest_digest(plan.dest_repo, plan.dest_reference) == plan.digest

    with ThreadPoolExecutor(max_workers=parallel) as workers:
        return list(workers.map(one, plans))


def _push_from_bundle(
    plans: List[ImagePlan], bundle: Bundle, pool: RegistryPool, stats: CopyStats, parallel: int, progress: Progress
) -> List[str]:
    """Push the images the destination lacks and the artifacts it lacks (of every image)."""
    todo = [p for p in plans if not p.present]
    where: Dict[str, str] = {}
    lock = threading.Lock()
    blob_jobs: Dict[str, tuple] = {}
    for plan in todo:
        for child in plan.children:
            for desc in manifest_blobs(child.json()):
                blob_jobs.setdefault(desc["digest"], (plan, desc))
    for plan in plans:
        for art in plan.artifacts_missing:
            for desc in art.blobs():
                blob_jobs.setdefault(desc["digest"], (plan, desc))

    problems: List[str] = []

    def push_blob(item: tuple) -> None:
        digest, (plan, _desc) = item
        dest = pool.get(plan.dest_host)
        try:
            upload_url = dest.mount_blob(plan.dest_repo, digest, plan.dest_repo)  # 201 when present
            if upload_url is None:
                stats.add(blobs_present=1)
            else:
                path = blob_path(digest)
                size = dest.upload_blob(plan.dest_repo, digest, bundle.chunks(path), upload_url, bundle.size(path))
                stats.add(blobs_copied=1, bytes_copied=size)
                progress(f"blob {digest[:19]} -> {plan.dest_repo} ({size} bytes)")
        except (RegistryError, BundleError, OSError) as exc:
            plan.error = f"import failed: {exc}"
            with lock:
                problems.append(f"{plan.source}: blob {digest}: {exc}")
            return
        with lock:
            where[digest] = plan.dest_repo

    with ThreadPoolExecutor(max_workers=parallel) as workers:
        list(workers.map(push_blob, blob_jobs.items()))

    def mount_here(plan: ImagePlan, desc: Dict[str, Any]) -> None:
        """A blob another image's repository received, mounted (or uploaded) into this one."""
        home = where.get(desc["digest"])
        if home and home != plan.dest_repo:
            dest = pool.get(plan.dest_host)
            url = dest.mount_blob(plan.dest_repo, desc["digest"], home)
            if url is not None:
                path = blob_path(desc["digest"])
                dest.upload_blob(plan.dest_repo, desc["digest"], bundle.chunks(path), url, bundle.size(path))
            stats.add(blobs_mounted=1)

    def push_image(plan: ImagePlan) -> None:
        if plan.error:
            return
        try:
            dest = pool.get(plan.dest_host)
            if not plan.present:
                for child in plan.children:
                    for desc in manifest_blobs(child.json()):
                        mount_here(plan, desc)
                    if plan.top is not None and plan.top.is_index:
                        dest.put_manifest(plan.dest_repo, child.digest, child)
                        stats.add(manifests_pushed=1)
                if plan.top is None:
                    raise BundleError(f"{plan.source}: the bundle has no manifest for it")
                dest.put_manifest(plan.dest_repo, plan.dest_reference, plan.top)
                stats.add(manifests_pushed=1, images_copied=1)
                progress(f"image {plan.source} -> {plan.destination}@{plan.digest}")
            if plan.artifacts_missing:
                pushed = push_artifacts(
                    plan.artifacts, dest, plan.dest_repo, plan.digest, lambda desc: mount_here(plan, desc)
                )
                stats.add(artifacts_copied=pushed, manifests_pushed=pushed)
        except (RegistryError, BundleError, OSError) as exc:
            plan.error = f"import failed: {exc}"
            problems.append(f"{plan.source}: {plan.error}")

    with ThreadPoolExecutor(max_workers=parallel) as workers:
        list(workers.map(push_image, [p for p in plans if not p.present or p.artifacts_missing]))
    return problems
