# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan, copy and verify images between registries; the lock file that records the result.

Order of writes for every image: blobs, then child manifests by digest, then the top manifest
(index or single manifest) under its tag. A run cut short therefore leaves blobs and untagged
manifests behind, never a tag pointing at something incomplete, and the next run skips what is
already there (blobs by HEAD, whole images by comparing the tag's digest).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.airgap.renku.plugins.module_utils.mirror import artifacts as oci_artifacts
from ansible_collections.airgap.renku.plugins.module_utils.mirror.artifacts import Artifact, TagLister, lock_records
from ansible_collections.airgap.renku.plugins.module_utils.mirror.lock import build_lock
from ansible_collections.airgap.renku.plugins.module_utils.mirror.receipt import Receipt, receipt_repository
from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import INDEX_TYPES
from ansible_collections.airgap.renku.plugins.module_utils.oci.refs import (
    ImageRef,
    map_repository,
    parse_image,
    rewrite_source,
)
from ansible_collections.airgap.renku.plugins.module_utils.oci.registry import (
    Manifest,
    Registry,
    RegistryError,
    manifest_blobs,
    platform_name,
    sha256_digest,
    stream_blob,
)

Progress = Callable[[str], None]


def no_progress(_msg: str) -> None:
    """The progress callback that reports nothing."""
    return None


@dataclass(frozen=True)
class Endpoint:
    """A registry host and how to talk to it."""

    host: str
    ca_file: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class MirrorSettings:
    """How the copy engine reaches the registries and names repositories at the destination."""

    destination: Endpoint
    prefix: str = "mirror"
    keep_registry_host: bool = True
    source_rewrites: Dict[str, str] = field(default_factory=dict)
    credentials: Dict[str, Endpoint] = field(default_factory=dict)  # by registry host
    ca_file: Optional[str] = None  # for every registry not given its own
    platforms: List[str] = field(default_factory=list)  # empty: all
    parallel: int = 8
    refresh: bool = False  # ask the source again for tags the previous lock file pins
    artifacts: str = "all"  # signatures, attestations, SBOMs, referrers: all | signatures | none


@dataclass
class ImagePlan:
    """What one image is, where it goes and whether it must be copied."""

    source: ImageRef
    src_host: str
    src_repo: str
    dest_host: str
    dest_repo: str
    top: Optional[Manifest] = None
    children: List[Manifest] = field(default_factory=list)
    platforms: Dict[str, str] = field(default_factory=dict)
    digest: str = ""
    media_type: str = ""
    present: bool = False
    size: int = 0
    filtered: bool = False
    pinned: Optional[str] = None  # digest the lock file pins the tag to
    error: Optional[str] = None
    inline: Dict[str, bytes] = field(default_factory=dict)  # small blobs already read from the source
    artifacts: List[Artifact] = field(default_factory=list)  # signatures, SBOMs, referrers of `digest`

    @property
    def artifacts_missing(self) -> List[Artifact]:
        return [a for a in self.artifacts if not a.present]

    @property
    def dest_reference(self) -> str:
        return self.source.tag or self.digest

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def destination(self) -> str:
        name = f"{self.dest_host}/{self.dest_repo}"
        return f"{name}:{self.source.tag}" if self.source.tag else name

    def blobs(self) -> List[Dict[str, Any]]:
        seen: Dict[str, Dict[str, Any]] = {}
        for child in self.children:
            for desc in manifest_blobs(child.json()):
                seen.setdefault(desc["digest"], desc)
        return list(seen.values())

    def lock_entry(self) -> Dict[str, Any]:
        entry: Dict[str, Any] = {
            "source": str(self.source),
            "pulled_from": f"{self.src_host}/{self.src_repo}:{self.source.reference}",
            "destination": self.destination,
            "digest": self.digest,
            "media_type": self.media_type,
            "platforms": dict(self.platforms),
            "size": self.size,
        }
        if self.filtered:
            entry["platforms_filtered"] = True
        if self.artifacts:
            entry["artifacts"] = lock_records(self.artifacts)
        return entry


@dataclass
class CopyStats:
    images_total: int = 0
    images_copied: int = 0
    images_present: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    bytes_planned: int = 0  # bytes of the images found missing so far (grows while plans resolve)
    manifests_pushed: int = 0
    manifests_verified: int = 0
    artifacts_copied: int = 0
    artifacts_present: int = 0
    seconds: float = 0.0
    receipt: str = "none"  # trusted | written | present | none | not written: <why>
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():  # numeric counters only
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> Dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        data["seconds"] = round(self.seconds, 3)
        return data


class RegistryPool:
    """One client per registry host, shared by every worker."""

    def __init__(self, settings: MirrorSettings) -> None:
        self.settings = settings
        self._clients: Dict[str, Registry] = {}
        self._lock = threading.Lock()
        self.tags = TagLister()  # each source repository's tags, listed once (cosign tag-scheme artifacts)

    def get(self, host: str) -> Registry:
        with self._lock:
            if host not in self._clients:
                creds = self.settings.credentials.get(host)
                if host == self.settings.destination.host:
                    creds = self.settings.destination
                ca = (creds.ca_file if creds and creds.ca_file else None) or self.settings.ca_file
                self._clients[host] = Registry(
                    host,
                    ca,
                    creds.username if creds else None,
                    creds.password if creds else None,
                )
            return self._clients[host]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


# --------------------------------------------------------------------------------------------------
# plan


def locate(ref: ImageRef, settings: MirrorSettings) -> ImagePlan:
    src_host, src_repo = rewrite_source(ref, settings.source_rewrites)
    dest_repo = map_repository(ref, settings.prefix, settings.keep_registry_host)
    return ImagePlan(ref, src_host, src_repo, settings.destination.host, dest_repo)


def _filter_index(index: Manifest, platforms: List[str]) -> Manifest:
    data = index.json()
    keep = [m for m in data.get("manifests", []) if platform_name(m.get("platform")) in platforms]
    if not keep:
        raise RegistryError(f"no manifest in the index matches platforms {platforms}")
    if len(keep) == len(data.get("manifests", [])):
        return index
    data["manifests"] = keep
    body = json.dumps(data, indent=3).encode()
    return Manifest(body, index.media_type, sha256_digest(body))


def _from_lock(plan: ImagePlan, pool: RegistryPool, known: Optional[Dict[str, Any]], refresh: bool) -> bool:
    """Warm path. The lock file pins each tag to a digest (unless `refresh`, which asks the source
    again); when the destination tag already carries that digest, the image is complete (a
    registry only accepts a manifest whose references it has) and nothing else is fetched:
    one HEAD per image."""
    if not known or known.get("platforms_filtered") or not plan.dest_host:
        return False
    if refresh:
        digest = plan.source.digest or pool.get(plan.src_host).manifest_digest(plan.src_repo, plan.source.reference)
    else:
        digest = plan.source.digest or known.get("digest")
    if not digest or digest != known.get("digest"):
        return False
    if pool.get(plan.dest_host).manifest_digest(plan.dest_repo, plan.dest_reference) != digest:
        plan.pinned = None if refresh else digest  # copy what the lock pins, not what the tag means today
        return False
    plan.digest, plan.media_type = digest, known.get("media_type", "")
    plan.platforms, plan.size, plan.present = dict(known.get("platforms") or {}), int(known.get("size", 0)), True
    return True


def resolve(
    plan: ImagePlan,
    pool: RegistryPool,
    platforms: List[str],
    known: Optional[Dict[str, Any]] = None,
    refresh: bool = False,
) -> ImagePlan:
    """Fetch the source manifests (index and children) and see whether the destination has them."""
    if not platforms and _from_lock(plan, pool, known, refresh):
        return plan
    src = pool.get(plan.src_host)
    top = src.get_manifest(plan.src_repo, plan.pinned or plan.source.reference)
    if top is None:
        raise RegistryError(f"{plan.source} not found at {plan.src_host}/{plan.src_repo}")
    if plan.source.digest and top.digest != plan.source.digest:
        raise RegistryError(f"{plan.source}: source returned digest {top.digest}")
    if top.is_index:
        if platforms:
            filtered = _filter_index(top, platforms)
            plan.filtered = filtered.digest != top.digest
            top = filtered
        for desc in top.json().get("manifests", []):
            child = src.get_manifest(plan.src_repo, desc["digest"])
            if child is None:
                raise RegistryError(f"{plan.source}: child manifest {desc['digest']} missing at the source")
            plan.children.append(child)
            plan.platforms[platform_name(desc.get("platform"))] = desc["digest"]
    else:
        plan.children.append(top)
        config = top.json().get("config", {})
        plan.platforms[_single_platform(src, plan, config)] = top.digest
    plan.top, plan.digest, plan.media_type = top, top.digest, top.media_type
    plan.size = sum(int(d.get("size", 0)) for d in plan.blobs())
    if plan.dest_host:  # an export has no destination to compare with
        dest = pool.get(plan.dest_host)
        plan.present = dest.manifest_digest(plan.dest_repo, plan.dest_reference) == top.digest
    return plan


def plan_artifacts(plan: ImagePlan, pool: RegistryPool, mode: str) -> None:
    """The artifacts of the image's digest at the source (see mirror/artifacts.py), which of them the
    destination has, and the manifests of the others. An image whose index was filtered to some platforms
    has another digest than the one signed: it carries none."""
    if mode == "none" or plan.filtered or not plan.digest:
        return
    src = pool.get(plan.src_host)
    tags = pool.tags.tags(src, plan.src_repo)
    plan.artifacts = oci_artifacts.discover(src, plan.src_repo, plan.digest, tags, mode)
    if plan.dest_host and plan.artifacts and plan.present:  # an image to copy has none of them there yet
        oci_artifacts.mark_present(plan.artifacts, pool.get(plan.dest_host), plan.dest_repo, plan.digest)
    for art in plan.artifacts_missing:
        oci_artifacts.fetch_manifests(art, src, plan.src_repo)


def _single_platform(src: Registry, plan: ImagePlan, config: Dict[str, Any]) -> str:
    """os/arch of a single-platform image, read from its (small) config blob; the blob is kept so
    the copy does not fetch it a second time."""
    if not config.get("digest") or int(config.get("size", 0)) > 1024 * 1024:
        return "unknown"
    try:
        resp = src.open_blob(plan.src_repo, config["digest"])
        try:
            body = resp.content
        finally:
            resp.close()
        data = json.loads(body)
    except (RegistryError, ValueError):
        return "unknown"
    if sha256_digest(body) == config["digest"]:
        plan.inline[config["digest"]] = body
    return platform_name(
        {"os": data.get("os"), "architecture": data.get("architecture"), "variant": data.get("variant")}
    )


def plan_images(
    refs: List[str],
    settings: MirrorSettings,
    pool: RegistryPool,
    progress: Progress = no_progress,
    previous_lock: Optional[Dict[str, Any]] = None,
) -> List[ImagePlan]:
    """Resolve every reference (in parallel); errors are kept per image, not raised."""
    plans = [locate(parse_image(r), settings) for r in dict.fromkeys(refs)]
    known = _known(previous_lock)
    with ThreadPoolExecutor(max_workers=settings.parallel) as workers:
        return list(workers.map(lambda plan: _plan_one(plan, pool, settings, known, progress), plans))


def _known(previous_lock: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {e["source"]: e for e in (previous_lock or {}).get("images") or [] if "source" in e}


def _plan_one(
    plan: ImagePlan, pool: RegistryPool, settings: MirrorSettings, known: Dict[str, Dict[str, Any]], progress: Progress
) -> ImagePlan:
    try:
        resolve(plan, pool, settings.platforms, known.get(str(plan.source)), settings.refresh)
        plan_artifacts(plan, pool, settings.artifacts)
        extra = f", {len(plan.artifacts_missing)} of {len(plan.artifacts)} artifacts to copy" if plan.artifacts else ""
        progress(f"plan {plan.source}: {'present' if plan.present else 'to copy'} ({plan.size} bytes{extra})")
    except (RegistryError, OSError, ValueError) as exc:
        plan.error = str(exc)
        progress(f"plan {plan.source}: ERROR {exc}")
    except Exception as exc:  # connection errors and the like
        plan.error = f"{type(exc).__name__}: {exc}"
        progress(f"plan {plan.source}: ERROR {plan.error}")
    return plan


def missing_bytes(plans: List[ImagePlan], pool: RegistryPool, parallel: int) -> int:
    """Bytes of blobs the destination lacks (check mode's estimate; blobs shared by images count once)."""
    wanted: Dict[str, tuple] = {}
    for plan in plans:
        if plan.error or plan.present:
            continue
        for desc in plan.blobs():
            wanted.setdefault(desc["digest"], (plan, int(desc.get("size", 0))))

    def lacking(item: tuple) -> int:
        digest, (plan, size) = item
        return 0 if pool.get(plan.dest_host).has_blob(plan.dest_repo, digest) else size

    with ThreadPoolExecutor(max_workers=parallel) as workers:
        return sum(workers.map(lacking, wanted.items()))


# --------------------------------------------------------------------------------------------------
# copy


class BlobTracker:
    """Copies each blob once per run; other repositories at the destination get a mount."""

    def __init__(self, pool: RegistryPool, stats: CopyStats, progress: Progress) -> None:
        self.pool, self.stats, self.progress = pool, stats, progress
        self._lock = threading.Lock()
        self._where: Dict[str, str] = {}  # digest -> a destination repo that has it
        self._inflight: Dict[str, threading.Event] = {}

    def ensure(self, plan: ImagePlan, desc: Dict[str, Any]) -> None:
        digest = desc["digest"]
        dest = self.pool.get(plan.dest_host)
        while True:
            with self._lock:
                known, event = self._where.get(digest), self._inflight.get(digest)
                owner = known is None and event is None
                if owner:
                    self._inflight[digest] = threading.Event()
            if event is not None and known is None:
                event.wait()  # another image copies this blob now; mount it afterwards
                continue
            break
        try:
            # mount from where this run put it, or "mount" from the repository itself: 201 when present
            upload_url = dest.mount_blob(plan.dest_repo, digest, known or plan.dest_repo)
            if upload_url is None:
                self._remember(digest, plan.dest_repo)
                self.stats.add(**({"blobs_mounted": 1} if known else {"blobs_present": 1}))
                return
            self._copy(plan, desc, upload_url)
        finally:
            if owner:
                with self._lock:
                    self._inflight.pop(digest).set()

    def _copy(self, plan: ImagePlan, desc: Dict[str, Any], upload_url: Optional[str]) -> None:
        digest = desc["digest"]
        if digest in plan.inline:
            size = self.pool.get(plan.dest_host).upload_blob(plan.dest_repo, digest, plan.inline[digest], upload_url)
        else:
            expected = desc.get("size")
            resp, chunks = stream_blob(self.pool.get(plan.src_host), plan.src_repo, digest, expected)
            try:
                size = self.pool.get(plan.dest_host).upload_blob(plan.dest_repo, digest, chunks, upload_url, expected)
            finally:
                resp.close()
        self._remember(digest, plan.dest_repo)
        self.stats.add(blobs_copied=1, bytes_copied=size)
        self.progress(f"blob {digest[:19]} -> {plan.dest_repo} ({size} bytes)")

    def _remember(self, digest: str, repo: str) -> None:
        with self._lock:
            self._where.setdefault(digest, repo)


def copy_image(plan: ImagePlan, tracker: BlobTracker, blob_workers: ThreadPoolExecutor) -> None:
    """Blobs, then child manifests by digest, then the tag: never a tag on a partial image."""
    if plan.top is None:
        raise RegistryError(f"{plan.source}: nothing resolved to copy")
    dest = tracker.pool.get(plan.dest_host)
    list(blob_workers.map(lambda d: tracker.ensure(plan, d), plan.blobs()))
    if plan.top.is_index:
        for child in plan.children:
            dest.put_manifest(plan.dest_repo, child.digest, child)
            tracker.stats.add(manifests_pushed=1)
    dest.put_manifest(plan.dest_repo, plan.dest_reference, plan.top)
    tracker.stats.add(manifests_pushed=1, images_copied=1)


def copy_artifacts(plan: ImagePlan, tracker: BlobTracker) -> None:
    """The image's artifacts the destination lacks, after the image (a signature never precedes what it signs)."""
    if not plan.artifacts_missing:
        return
    dest = tracker.pool.get(plan.dest_host)
    pushed = oci_artifacts.push(
        plan.artifacts, dest, plan.dest_repo, plan.digest, lambda desc: tracker.ensure(plan, desc)
    )
    tracker.stats.add(artifacts_copied=pushed, manifests_pushed=pushed)
    tracker.progress(f"artifacts {plan.source}: {pushed} copied")


def resolve_children(plan: ImagePlan, pool: RegistryPool) -> None:
    """Fetch the manifests a warm (lock-based) plan skipped, from the destination."""
    dest = pool.get(plan.dest_host)
    top = dest.get_manifest(plan.dest_repo, plan.digest)
    if top is None:
        return
    plan.top = top
    digests = [d["digest"] for d in top.json().get("manifests", [])] if top.is_index else []
    plan.children = [m for m in (dest.get_manifest(plan.dest_repo, d) for d in digests) if m] or [top]


def verify_image(plan: ImagePlan, pool: RegistryPool, blobs: bool = False) -> List[str]:
    """Problems found at the destination: the tag's digest, every child manifest, optionally blobs."""
    dest = pool.get(plan.dest_host)
    problems = []
    found = dest.manifest_digest(plan.dest_repo, plan.dest_reference)
    if found != plan.digest:
        problems.append(f"{plan.destination}: digest {found}, expected {plan.digest}")
    for digest in sorted(set(plan.platforms.values())) if plan.is_index else []:
        if dest.manifest_digest(plan.dest_repo, digest) != digest:
            problems.append(f"{plan.destination}: manifest {digest} missing or altered")
    if blobs and plan.top is None:
        resolve_children(plan, pool)
    if blobs:
        problems += [
            f"{plan.destination}: blob {d['digest']} missing"
            for d in plan.blobs()
            if not dest.has_blob(plan.dest_repo, d["digest"])
        ]
    # artifacts copied in this run, or all of them for a full verification
    check = plan.artifacts if blobs else plan.artifacts_missing
    if check:
        problems += oci_artifacts.verify(check, dest, plan.dest_repo, plan.digest, plan.destination)
    return problems


@dataclass
class MirrorResult:
    plans: List[ImagePlan]
    stats: CopyStats
    problems: List[str]

    @property
    def errors(self) -> List[str]:
        return [f"{p.source}: {p.error}" for p in self.plans if p.error] + self.problems

    def lock(self) -> Dict[str, Any]:
        return build_lock(lock_entries(self.plans))


def mirror_images(
    refs: List[str],
    settings: MirrorSettings,
    check_mode: bool = False,
    verify_all: bool = False,
    progress: Progress = no_progress,
    previous_lock: Optional[Dict[str, Any]] = None,
    verify: str = "receipt",
    stats: Optional[CopyStats] = None,
) -> MirrorResult:
    """Plan every image; unless `check_mode`, copy what is missing and verify it at the destination.

    `verify`: V(receipt) trusts the destination's receipt for an unchanged set (one request),
    V(tags) asks for every tag, V(full) (or `verify_all`) also for every blob of every image.
    `stats`: counters to fill while the run goes (someone else may read them meanwhile).
    """
    started = time.monotonic()
    verify = "full" if verify_all else verify
    stats = stats if stats is not None else CopyStats()
    stats.images_total = len(dict.fromkeys(refs))
    pool = RegistryPool(settings)
    try:
        trusted = _trusted_by_receipt(refs, settings, pool, previous_lock) if verify == "receipt" else None
        if trusted is not None:
            return present_by_receipt(trusted, stats, started, progress)
        if check_mode:
            plans = plan_images(refs, settings, pool, progress, previous_lock)
            good = [p for p in plans if not p.error]
            stats.images_total, stats.images_present = len(plans), sum(1 for p in good if p.present)
            stats.seconds = time.monotonic() - started
            return MirrorResult(plans, stats, [])
        if settings.destination.host:
            pool.get(settings.destination.host).ping()  # settle auth once, before the workers start
        plans = [locate(parse_image(r), settings) for r in dict.fromkeys(refs)]
        problems = _mirror_all(plans, pool, settings, stats, verify, _known(previous_lock), progress)
        good = [p for p in plans if not p.error]
        stats.images_total, stats.images_present = len(plans), sum(1 for p in good if p.present)
        if not problems and len(good) == len(plans):
            stats.receipt = write_receipt(plans, settings, pool)
        stats.seconds = time.monotonic() - started
        progress(f"done: {stats.images_copied} copied, {stats.images_present} present, {stats.bytes_copied} bytes")
        return MirrorResult(plans, stats, problems)
    finally:
        pool.close()


def _mirror_all(
    plans: List[ImagePlan],
    pool: RegistryPool,
    settings: MirrorSettings,
    stats: CopyStats,
    verify: str,
    known: Dict[str, Dict[str, Any]],
    progress: Progress,
) -> List[str]:
    """Each image through plan, copy and read-back in one worker, so no stage waits for the slowest
    image of the stage before it."""
    tracker = BlobTracker(pool, stats, progress)
    problems: List[str] = []

    def one(plan: ImagePlan) -> None:
        if _plan_one(plan, pool, settings, known, progress).error:
            return
        stats.add(**({"images_present": 1} if plan.present else {"bytes_planned": plan.size}))
        stats.add(artifacts_present=len(plan.artifacts) - len(plan.artifacts_missing))
        try:
            if not plan.present:
                copy_image(plan, tracker, blob_workers)
                progress(f"image {plan.source} -> {plan.destination}@{plan.digest}")
            copy_artifacts(plan, tracker)
        except Exception as exc:  # keep going with the other images; reported below
            plan.error = f"copy failed: {type(exc).__name__}: {exc}"
            problems.append(f"{plan.source}: {plan.error}")
            progress(f"image {plan.source}: ERROR {plan.error}")
            return
        if not plan.present or plan.artifacts_missing or verify == "full":
            problems.extend(_verify_one(plan, pool, stats, verify == "full"))

    workers_count = max(1, min(settings.parallel, len(plans)))
    with ThreadPoolExecutor(settings.parallel) as blob_workers, ThreadPoolExecutor(workers_count) as workers:
        list(workers.map(one, plans))
    return problems


def _receipt_for(plans: List[ImagePlan], settings: MirrorSettings) -> Receipt:
    pairs = [(p.destination, p.digest) for p in plans]
    pairs += [(f"{p.dest_host}/{p.dest_repo}:{a.reference}", a.digest) for p in plans for a in p.artifacts]
    return Receipt(receipt_repository(settings.prefix), pairs, settings.platforms, settings.artifacts)


def _trusted_by_receipt(
    refs: List[str], settings: MirrorSettings, pool: RegistryPool, previous_lock: Optional[Dict[str, Any]]
) -> Optional[List[ImagePlan]]:
    """Plans of a set the lock file pins completely and whose receipt the destination holds; else None."""
    if not previous_lock or settings.refresh or not settings.destination.host or not refs:
        return None
    known = _known(previous_lock)
    plans = []
    for ref in dict.fromkeys(refs):
        plan = locate(parse_image(ref), settings)
        entry = known.get(str(plan.source))
        if not entry or entry.get("destination") != plan.destination or not entry.get("digest"):
            return None
        plan.digest, plan.media_type = entry["digest"], entry.get("media_type", "")
        plan.platforms, plan.size = dict(entry.get("platforms") or {}), int(entry.get("size", 0))
        plan.filtered, plan.present = bool(entry.get("platforms_filtered")), True
        plan.artifacts = _recorded_artifacts(entry, settings.artifacts)
        plans.append(plan)
    return plans if receipt_present(plans, settings, pool) else None


def _recorded_artifacts(entry: Dict[str, Any], mode: str) -> List[Artifact]:
    """The artifacts a lock entry records that `mode` takes, as present (the receipt names the mode too)."""
    found = [a for a in (Artifact.from_record(r) for r in entry.get("artifacts") or []) if oci_artifacts.taken(a, mode)]
    for art in found:
        art.present = True
    return found


def present_by_receipt(plans: List[ImagePlan], stats: CopyStats, started: float, progress: Progress) -> MirrorResult:
    """The result of a run the destination's receipt answered: every image present, nothing copied."""
    for plan in plans:
        plan.present = True
    stats.images_total = stats.images_present = len(plans)
    stats.artifacts_present = sum(len(p.artifacts) for p in plans)
    stats.receipt = "trusted"
    stats.seconds = time.monotonic() - started
    progress(f"done: {len(plans)} images present by receipt, nothing to copy")
    return MirrorResult(plans, stats, [])


def receipt_present(plans: List[ImagePlan], settings: MirrorSettings, pool: RegistryPool) -> bool:
    """Whether the destination holds the receipt of exactly this set (an error counts as no: no shortcut)."""
    if not plans:
        return False
    try:
        return _receipt_for(plans, settings).present(pool.get(settings.destination.host))
    except RegistryError:
        return False


def write_receipt(plans: List[ImagePlan], settings: MirrorSettings, pool: RegistryPool) -> str:
    """Record the verified set at the destination; a failure only costs the next run its shortcut."""
    if not settings.destination.host or not plans:
        return "none"
    receipt = _receipt_for(plans, settings)
    dest = pool.get(settings.destination.host)
    try:
        if receipt.present(dest):
            return "present"
        receipt.write(dest)
    except (RegistryError, OSError) as exc:
        return f"not written: {exc}"
    return "written"


def _verify_one(plan: ImagePlan, pool: RegistryPool, stats: CopyStats, blobs: bool) -> List[str]:
    try:
        found = verify_image(plan, pool, blobs)
    except Exception as exc:
        return [f"{plan.source}: verification failed: {exc}"]
    artifacts = len(plan.artifacts if blobs else plan.artifacts_missing)
    stats.add(manifests_verified=1 + (len(set(plan.platforms.values())) if plan.is_index else 0) + artifacts)
    return found


def verify_images(
    plans: List[ImagePlan], pool: RegistryPool, stats: CopyStats, parallel: int, blobs: bool
) -> List[str]:
    """Problems found reading `plans` back at the destination (in parallel); each read-back is counted in `stats`."""
    with ThreadPoolExecutor(max_workers=parallel) as workers:
        return [
            problem for found in workers.map(lambda p: _verify_one(p, pool, stats, blobs), plans) for problem in found
        ]


# --------------------------------------------------------------------------------------------------
# lock file entries


def lock_entries(plans: List[ImagePlan]) -> List[Dict[str, Any]]:
    """The lock file entries of the images resolved without error (see `lock.build_lock`)."""
    return [p.lock_entry() for p in plans if p.digest and not p.error]


def summarise(plans: List[ImagePlan]) -> List[Dict[str, Any]]:
    """The plan as the module returns it."""
    rows = []
    for plan in plans:
        row: Dict[str, Any] = {
            "source": str(plan.source),
            "pulled_from": f"{plan.src_host}/{plan.src_repo}:{plan.source.reference}",
            "destination": plan.destination,
            "action": "error" if plan.error else ("present" if plan.present else "copy"),
            "size": plan.size,
        }
        if plan.digest:
            row["digest"] = plan.digest
            row["platforms"] = dict(plan.platforms)
        if plan.artifacts:
            row["artifacts"] = [
                dict(a.record(), action="present" if a.present else "copy")
                for a in oci_artifacts.sort_artifacts(plan.artifacts)
            ]
        if plan.error:
            row["error"] = plan.error
        rows.append(row)
    return rows
