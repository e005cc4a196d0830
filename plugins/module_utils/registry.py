# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small OCI Distribution client: manifests, blobs streamed in chunks, cross-repository mounts.

TLS is always verified against the CA file given (the session ignores REQUESTS_CA_BUNDLE and
friends). Auth: HTTP Basic, or Bearer tokens fetched from the realm a registry announces.
Blobs are never held in memory: downloads are iterated in chunks and fed to a chunked upload.
"""

from __future__ import annotations

import hashlib
import re
import threading
import traceback
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple
from urllib.parse import urljoin

try:
    import requests
    from requests.adapters import HTTPAdapter

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised through missing_required_lib
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, *INDEX_TYPES)
ACCEPT = ", ".join(MANIFEST_TYPES)
CHUNK = 1024 * 1024
TIMEOUT = (10, 300)


class RegistryError(Exception):
    """A registry answered something other than what the protocol promises."""


class Manifest(NamedTuple):
    body: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def json(self) -> Dict[str, Any]:
        import json

        return json.loads(self.body)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def media_type_of(body: bytes, header: str) -> str:
    """The manifest's own mediaType wins over a Content-Type a registry may have guessed."""
    import json

    try:
        declared = json.loads(body).get("mediaType")
    except ValueError:
        declared = None
    return declared or header.split(";")[0].strip()


def manifest_blobs(manifest: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Descriptors of the config and layers of an image manifest."""
    blobs = [manifest["config"]] if manifest.get("config") else []
    return blobs + list(manifest.get("layers") or [])


def platform_name(platform: Optional[Dict[str, Any]]) -> str:
    if not platform:
        return "unknown"
    name = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
    return f"{name}/{platform['variant']}" if platform.get("variant") else name


class Registry:
    """One registry host: `host[:port]`, a CA file, optional username/password."""

    def __init__(
        self,
        host: str,
        ca_file: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        pool_size: int = 16,
    ) -> None:
        self.host = host
        self.base = f"https://{host}"
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would silently replace the CA asked for
        self.session.verify = ca_file if ca_file else True
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4))
        self.session.mount("https://", adapter)
        self._credentials = (username, password) if username else None
        self._basic = False
        self._tokens: Dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    # -- auth ---------------------------------------------------------------------------------------

    def _auth_headers(self, scope: str) -> Dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, _sep, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self._credentials:
                raise RegistryError(f"{self.host} requires credentials and none were given")
            self.session.auth = self._credentials
            self._basic = True
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"{self.host}: unsupported auth challenge {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        resp = self.session.get(fields["realm"], params=query, auth=self._credentials, timeout=TIMEOUT)
        if resp.status_code != 200:
            raise RegistryError(f"{self.host}: token request failed with HTTP {resp.status_code}")
        data = resp.json()
        with self._lock:
            self._tokens[scope] = data.get("token") or data.get("access_token", "")

    def request(self, method: str, path_or_url: str, repo: str, push: bool = False, **kwargs: Any) -> Any:
        """One call, retried once after answering an auth challenge."""
        url = path_or_url if path_or_url.startswith("https://") else f"{self.base}{path_or_url}"
        scope = f"repository:{repo}:{'pull,push' if push else 'pull'}"
        kwargs.setdefault("timeout", TIMEOUT)
        headers = {**kwargs.pop("headers", {})}
        resp = self.session.request(method, url, headers={**headers, **self._auth_headers(scope)}, **kwargs)
        replayable = isinstance(kwargs.get("data"), (bytes, str, type(None)))
        if resp.status_code == 401 and replayable:
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            self._authenticate(challenge, scope)
            resp = self.session.request(method, url, headers={**headers, **self._auth_headers(scope)}, **kwargs)
        if resp.status_code == 401:
            raise RegistryError(f"{self.host}: not authorised for {scope} (HTTP 401)")
        return resp

    def ping(self) -> None:
        """Check the registry answers and accepts our credentials (settles auth for later calls)."""
        try:
            resp = self.request("GET", "/v2/", "")
        except RegistryError as exc:
            raise RegistryError(f"{self.host} refused the credentials given for it ({exc})") from exc
        if resp.status_code != 200:
            raise RegistryError(f"{self.host}/v2/ answered HTTP {resp.status_code}")

    # -- manifests ----------------------------------------------------------------------------------

    def manifest_digest(self, repo: str, reference: str) -> Optional[str]:
        """HEAD a manifest: its digest, or None when it is not there."""
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": ACCEPT})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RegistryError(f"HEAD {self.host}/{repo}:{reference} answered HTTP {resp.status_code}")
        return resp.headers.get("Docker-Content-Digest")

    def get_manifest(self, repo: str, reference: str) -> Optional[Manifest]:
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": ACCEPT})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RegistryError(f"GET {self.host}/{repo}:{reference} answered HTTP {resp.status_code}")
        body = resp.content
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{self.host}/{repo}@{reference}: content digest is {digest}")
        return Manifest(body, media_type_of(body, resp.headers.get("Content-Type", "")), digest)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo,
            push=True,
            data=manifest.body,
            headers={"Content-Type": manifest.media_type},
        )
        if resp.status_code not in (200, 201):
            raise RegistryError(
                f"PUT manifest {self.host}/{repo}:{reference} answered HTTP {resp.status_code}: {resp.text[:300]}"
            )
        digest = resp.headers.get("Docker-Content-Digest", manifest.digest)
        if digest != manifest.digest:
            raise RegistryError(f"{self.host}/{repo}:{reference} stored as {digest}, expected {manifest.digest}")
        return digest

    # -- blobs --------------------------------------------------------------------------------------

    def has_blob(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo)
        return resp.status_code == 200

    def open_blob(self, repo: str, digest: str) -> Any:
        """A streaming response for a blob (caller closes it)."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", repo, stream=True)
        if resp.status_code != 200:
            resp.close()
            raise RegistryError(f"GET blob {self.host}/{repo}@{digest} answered HTTP {resp.status_code}")
        return resp

    def _upload_url(self, location: str) -> str:
        return urljoin(self.base + "/", location)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> Optional[str]:
        """Try a cross-repository mount; returns None when mounted, else an upload URL to use.

        With `from_repo == repo` this is an existence check that opens the upload session at once
        when the blob is missing: one request where HEAD + POST would take two.
        """
        resp = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", repo, push=True, params={"mount": digest, "from": from_repo}
        )
        if resp.status_code == 201:
            return None
        if resp.status_code != 202:
            raise RegistryError(f"POST upload {self.host}/{repo} answered HTTP {resp.status_code}")
        return self._upload_url(resp.headers["Location"])

    def start_upload(self, repo: str) -> str:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo, push=True)
        if resp.status_code != 202:
            raise RegistryError(f"POST upload {self.host}/{repo} answered HTTP {resp.status_code}")
        return self._upload_url(resp.headers["Location"])

    def upload_blob(self, repo: str, digest: str, chunks: Iterable[bytes], upload_url: Optional[str] = None) -> int:
        """Stream `chunks` into an upload and commit it under `digest` in the same request; returns bytes.

        One PUT with a chunked body (the registry checks the digest before it links the blob); the
        session comes from `upload_url` (a refused mount) or a new POST.
        """
        url = upload_url or self.start_upload(repo)
        counter = _Counter(chunks)
        resp = self.request(
            "PUT",
            url,
            repo,
            push=True,
            params={"digest": digest},
            data=iter(counter),
            headers={"Content-Type": "application/octet-stream"},
        )
        if resp.status_code != 201:
            raise RegistryError(
                f"PUT upload {self.host}/{repo}@{digest} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        return counter.size


class _Counter:
    """Wraps a chunk iterator and counts what passes through (the registry verifies the digest)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if chunk:
                self.size += len(chunk)
                yield chunk


def stream_blob(source: Registry, repo: str, digest: str) -> Tuple[Any, Iterator[bytes]]:
    resp = source.open_blob(repo, digest)
    return resp, resp.iter_content(CHUNK)


def file_chunks(path: str, on_chunk: Optional[Callable[[int], None]] = None) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                return
            if on_chunk:
                on_chunk(len(chunk))
            yield chunk
