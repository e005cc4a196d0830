# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small OCI Distribution client: manifests, blobs streamed in chunks, cross-repository mounts.

Transport: the standard library's http.client, keep-alive connections in one pool per host shared
by every thread (a third of the CPU per request that a requests session costs, and a mirror run is
mostly requests). TLS is always verified against the CA file given (only that file: REQUESTS_CA_BUNDLE and
proxy variables are not consulted). Auth: HTTP Basic, or Bearer tokens fetched from the realm a registry announces.
Redirects (blob downloads sent to object storage) are followed without the registry's credentials.
Blobs are never held in memory: downloads are read in chunks and fed to a chunked upload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import socket
import ssl
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import urlencode, urljoin, urlsplit

from ansible_collections.airgap.renku.plugins.module_utils.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX

ACCEPT = ", ".join(MANIFEST_TYPES)
CHUNK = 1024 * 1024
TIMEOUT = (10, 300)  # connect, read (seconds)
MAX_REDIRECTS = 5
_DRAIN = 64 * 1024  # an unread rest up to this size is read to keep the connection
USER_AGENT = "airgap.renku-mirror"
_BUFFERS = threading.local()  # one CHUNK-sized buffer per thread for streamed blobs
# a kept-alive connection the server has meanwhile closed fails like this on its next use
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError)


class RegistryError(Exception):
    """A registry answered something other than what the protocol promises."""


# doc fragment airgap.renku.registry_destination; each module gives `prefix` its own default
REGISTRY_DESTINATION_ARGSPEC: Dict[str, Dict[str, Any]] = {
    "destination": {"type": "str"},
    "destination_username": {"type": "str"},
    "destination_password": {"type": "str", "no_log": True},
    "prefix": {"type": "str"},
}


def registry_destination_argspec(prefix: str) -> Dict[str, Dict[str, Any]]:
    """REGISTRY_DESTINATION_ARGSPEC with `prefix` defaulting to the module's own repository path."""
    return {**REGISTRY_DESTINATION_ARGSPEC, "prefix": {"type": "str", "default": prefix}}


class Manifest(NamedTuple):
    body: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def json(self) -> Dict[str, Any]:
        return json.loads(self.body)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def media_type_of(body: bytes, header: str) -> str:
    """The manifest's own mediaType wins over a Content-Type a registry may have guessed."""
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


# --------------------------------------------------------------------------------------------------
# transport


class Response:
    """What one request answered; the body is read on demand (`content`, `iter_views`)."""

    def __init__(self, raw: http.client.HTTPResponse, release: Callable[[bool], None]) -> None:
        self._raw = raw
        self._release = release
        self._body: Optional[bytes] = None
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive .get()

    @property
    def content(self) -> bytes:
        if self._body is None:
            try:
                self._body = self._raw.read()
            finally:
                self.close()
        return self._body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_views(self) -> Iterator[memoryview]:
        """The body in pieces read into this thread's reusable buffer: each piece is valid until the
        next one is asked for (streaming a blob allocates nothing per piece)."""
        try:
            yield from read_views(self._raw.readinto)
        finally:
            self.close()

    def close(self) -> None:
        """Hand the connection back when the body was read to the end (a short rest, such as a
        redirect's, is read first); otherwise close it."""
        if self._release is None:
            return
        release, self._release = self._release, None
        raw = self._raw
        if not raw.isclosed() and raw.length is not None and raw.length <= _DRAIN:
            with contextlib.suppress(OSError, http.client.HTTPException):
                raw.read()
        release(raw.isclosed())


def _replayable(body: Any) -> bool:
    """A body that can be sent again (a stream is consumed by the first attempt)."""
    return isinstance(body, (bytes, type(None)))


class Transport:
    """Keep-alive HTTPS connections shared by every thread (an idle pool per host), TLS verified
    against `ca_file`. A connection goes back to the pool once its response was read to the end."""

    def __init__(self, ca_file: Optional[str] = None) -> None:
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self._idle: Dict[str, List[http.client.HTTPSConnection]] = {}
        self._all: List[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()

    def _acquire(self, netloc: str) -> http.client.HTTPSConnection:
        with self._lock:
            idle = self._idle.get(netloc)
            if idle:
                return idle.pop()
            conn = http.client.HTTPSConnection(netloc, timeout=TIMEOUT[0], context=self.context)
            self._all.append(conn)
            return conn

    def _release(self, netloc: str, conn: http.client.HTTPSConnection, reusable: bool) -> None:
        if reusable and conn.sock is not None:
            with self._lock:
                self._idle.setdefault(netloc, []).append(conn)
        else:
            conn.close()

    @staticmethod
    def _open(conn: http.client.HTTPSConnection) -> None:
        if conn.sock is None:
            conn.connect()
            conn.sock.settimeout(TIMEOUT[1])
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, method: str, url: str, headers: Dict[str, str], body: Any = None, stream: bool = False) -> Response:
        """One request to the URL's host; a replayable request is sent again on a new connection when
        a kept-alive one turns out to be closed by the server."""
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise RegistryError(f"refusing a non-HTTPS URL: {parts.scheme}://{parts.netloc}")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": USER_AGENT, **headers}
        replayable = _replayable(body)
        for attempt in (1, 2, 3):
            conn = self._acquire(parts.netloc)
            reused = conn.sock is not None
            try:
                self._open(conn)
                # a body that names its framing goes as it is; http.client chunks other iterables itself
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except _STALE:
                conn.close()
                if attempt < 3 and reused and replayable:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            resp = Response(raw, lambda done, c=conn, r=raw: self._release(parts.netloc, c, done and not r.will_close))
            if not stream or method == "HEAD":
                resp.content  # read now: the connection is free for the next request  # noqa: B018
            return resp
        raise RegistryError(f"{method} {parts.netloc}: no connection")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            conns, self._all, self._idle = self._all, [], {}
        for conn in conns:
            conn.close()


class Registry:
    """One registry host: `host[:port]`, a CA file, optional username/password."""

    def __init__(
        self,
        host: str,
        ca_file: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        self.host = host
        self.base = f"https://{host}"
        self.transport = Transport(ca_file)
        self._credentials = (username, password or "") if username else None
        self._basic: Optional[str] = None  # the Authorization value once the registry asked for Basic
        self._tokens: Dict[str, str] = {}
        # whether GET /v2/<repo>/referrers/<digest> is served (None until asked once; one thread asks first)
        self.referrers_api: Optional[bool] = None
        self._referrers_probe = threading.Lock()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.transport.close()

    # -- auth ---------------------------------------------------------------------------------------

    def _basic_value(self) -> str:
        user, password = self._credentials or ("", "")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _auth_headers(self, scope: str) -> Dict[str, str]:
        with self._lock:
            token, basic = self._tokens.get(scope), self._basic
        if token:
            return {"Authorization": f"Bearer {token}"}
        return {"Authorization": basic} if basic else {}

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, _sep, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self._credentials:
                raise RegistryError(f"{self.host} requires credentials and none were given")
            with self._lock:
                self._basic = self._basic_value()
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"{self.host}: unsupported auth challenge {challenge!r}")
        with self._lock:
            self._basic = None  # a token registry: Basic goes to its realm only
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise RegistryError(f"{self.host}: Bearer challenge without a realm")
        wanted = fields.get("scope", scope)
        query = urlencode({"service": fields.get("service", ""), **({"scope": wanted} if wanted else {})})
        headers = {"Authorization": self._basic_value()} if self._credentials else {}
        resp = self.transport.send("GET", f"{fields['realm']}?{query}", headers)
        if resp.status_code != 200:
            raise RegistryError(f"{self.host}: token request failed with HTTP {resp.status_code}")
        data = resp.json()
        with self._lock:
            self._tokens[scope] = data.get("token") or data.get("access_token", "")

    def request(self, method: str, path_or_url: str, repo: str, push: bool = False, **kwargs: Any) -> Response:
        """One call, retried once after answering an auth challenge; redirects to other hosts
        (object storage) are followed without credentials."""
        url = path_or_url if path_or_url.startswith("https://") else f"{self.base}{path_or_url}"
        if kwargs.get("params"):
            url += ("&" if "?" in url else "?") + urlencode(kwargs["params"])
        scope = f"repository:{repo}:{'pull,push' if push else 'pull'}" if repo else ""  # "" for /v2/ itself
        headers, body, stream = dict(kwargs.get("headers") or {}), kwargs.get("data"), kwargs.get("stream", False)
        resp = self.transport.send(method, url, {**headers, **self._auth_headers(scope)}, body, stream)
        if resp.status_code == 401 and _replayable(body):
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            self._authenticate(challenge, scope)
            resp = self.transport.send(method, url, {**headers, **self._auth_headers(scope)}, body, stream)
        if resp.status_code == 401:
            resp.close()
            raise RegistryError(f"{self.host}: not authorised for {scope} (HTTP 401)")
        if method in ("GET", "HEAD") and resp.status_code in (301, 302, 303, 307, 308):
            resp = self._follow(method, url, resp, headers, scope, stream)
        return resp

    def _follow(
        self, method: str, url: str, resp: Response, headers: Dict[str, str], scope: str, stream: bool
    ) -> Response:
        for _hop in range(MAX_REDIRECTS):
            location = resp.headers.get("Location")
            resp.close()
            if not location:
                raise RegistryError(f"{self.host}: redirect without a Location")
            url = urljoin(url, location)
            same_host = urlsplit(url).netloc == self.host
            hop_headers = {**headers, **(self._auth_headers(scope) if same_host else {})}
            resp = self.transport.send(method, url, hop_headers, None, stream)
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp
        raise RegistryError(f"{self.host}: more than {MAX_REDIRECTS} redirects")

    def ping(self) -> None:
        """Check the registry answers and accepts our credentials (settles auth for later calls).

        With credentials, Basic goes along on this first call (saves the 401 round trip on Basic
        registries); a token registry answers 401 with its challenge as it would without.
        """
        if self._credentials:
            with self._lock:
                self._basic = self._basic or self._basic_value()
        try:
            resp = self.request("GET", "/v2/", "")
        except RegistryError as exc:
            raise RegistryError(f"{self.host} refused the credentials given for it ({exc})") from exc
        if resp.status_code != 200:
            raise RegistryError(f"{self.host}/v2/ answered HTTP {resp.status_code}")

    def _pages(self, path: str, repo: str, field: str, what: str) -> List[str]:
        """Every entry of a paginated list (`field` of each page), following `Link`; [] on 404."""
        found: List[str] = []
        url = path
        for _page in range(1000):
            resp = self.request("GET", url, repo)
            if resp.status_code == 404:
                return found
            if resp.status_code != 200:
                raise RegistryError(f"GET {self.host}/{what} answered HTTP {resp.status_code}")
            found += list(resp.json().get(field) or [])
            link = resp.headers.get("Link", "")
            if 'rel="next"' not in link:
                return found
            url = urljoin(self.base + "/", link.split(";", 1)[0].strip().strip("<>"))
        raise RegistryError(f"{self.host}/{what}: too many pages")

    def list_tags(self, repo: str) -> List[str]:
        """Every tag of `repo` ([] when the repository does not exist), following `Link` pagination."""
        return self._pages(f"/v2/{repo}/tags/list", repo, "tags", f"{repo} tags")

    def list_repositories(self) -> List[str]:
        """Every repository of the catalog, 1000 a page (distribution v3 refuses larger pages)."""
        return self._pages("/v2/_catalog?n=1000", "", "repositories", "_catalog")

    # -- manifests ----------------------------------------------------------------------------------

    def _manifest_response(self, method: str, repo: str, reference: str) -> Optional[Response]:
        """The answer to HEAD or GET of a manifest; None when it is not there."""
        resp = self.request(method, f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": ACCEPT})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RegistryError(f"{method} {self.host}/{repo}:{reference} answered HTTP {resp.status_code}")
        return resp

    def manifest_digest(self, repo: str, reference: str) -> Optional[str]:
        """HEAD a manifest: its digest, or None when it is not there."""
        resp = self._manifest_response("HEAD", repo, reference)
        return None if resp is None else resp.headers.get("Docker-Content-Digest")

    def get_manifest(self, repo: str, reference: str) -> Optional[Manifest]:
        resp = self._manifest_response("GET", repo, reference)
        if resp is None:
            return None
        body = resp.content
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{self.host}/{repo}@{reference}: content digest is {digest}")
        return Manifest(body, media_type_of(body, resp.headers.get("Content-Type", "")), digest)

    def referrers(self, repo: str, digest: str) -> Optional[List[Dict[str, Any]]]:
        """Descriptors the OCI 1.1 referrers API lists for `digest`; None when the registry does not serve
        the API (answered 404 or something other than an index once: not asked again)."""
        if self.referrers_api is None:
            with self._referrers_probe:
                if self.referrers_api is None:
                    return self._referrers(repo, digest)
        return None if self.referrers_api is False else self._referrers(repo, digest)

    def _referrers(self, repo: str, digest: str) -> Optional[List[Dict[str, Any]]]:
        resp = self.request("GET", f"/v2/{repo}/referrers/{digest}", repo, headers={"Accept": OCI_INDEX})
        try:
            data = resp.json() if resp.status_code == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
            if resp.status_code == 404 and b"NAME_UNKNOWN" in resp.content:
                return None  # a registry with the API, asked about a repository it does not have yet
            if resp.status_code in (200, 404, 405):
                self.referrers_api = False
                return None
            raise RegistryError(f"GET {self.host}/{repo} referrers of {digest} answered HTTP {resp.status_code}")
        self.referrers_api = True
        return list(data.get("manifests") or [])

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

    def upload_blob(
        self,
        repo: str,
        digest: str,
        chunks: Union[bytes, Iterable[Any]],
        upload_url: Optional[str] = None,
        size: Optional[int] = None,
    ) -> int:
        """Stream `chunks` (or send `bytes`) into an upload and commit it under `digest` in the same
        request; returns the bytes sent.

        One PUT (the registry checks the digest before it links the blob); the session comes from
        `upload_url` (a refused mount) or a new POST. A stream goes as a chunked body, framed here so
        its pieces (views of a reused buffer) are sent as they are; with `size`, a stream that is
        longer or shorter fails the upload before it is committed.
        """
        url = upload_url or self.start_upload(repo)
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(chunks, bytes):
            data: Any = chunks
            size = len(chunks)
        else:
            counter = _Counter(chunks, f"{self.host}/{repo}@{digest}", size)
            data = _chunked(counter)
            headers["Transfer-Encoding"] = "chunked"
        resp = self.request("PUT", url, repo, push=True, params={"digest": digest}, data=data, headers=headers)
        if resp.status_code != 201:
            raise RegistryError(
                f"PUT upload {self.host}/{repo}@{digest} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        return size if isinstance(chunks, bytes) else counter.size


class _Counter:
    """Wraps a chunk iterator and counts what passes through (the registry verifies the digest);
    with an expected size, a stream that is longer or shorter stops the upload with an error."""

    def __init__(self, chunks: Iterable[Any], what: str, expected: Optional[int] = None) -> None:
        self._chunks, self._what, self._expected = chunks, what, expected
        self.size = 0

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._chunks:
            if chunk:
                self.size += len(chunk)
                if self._expected is not None and self.size > self._expected:
                    raise RegistryError(f"{self._what}: the source sent more than the {self._expected} bytes expected")
                yield chunk
        if self._expected is not None and self.size != self._expected:
            raise RegistryError(f"{self._what}: the source ended after {self.size} of {self._expected} bytes")


def _chunked(pieces: Iterable[Any]) -> Iterator[Any]:
    """HTTP/1.1 chunked framing around each piece, without copying the piece."""
    for piece in pieces:
        yield b"%X\r\n" % len(piece)
        yield piece
        yield b"\r\n"
    yield b"0\r\n\r\n"


def read_views(readinto: Callable[[memoryview], Optional[int]]) -> Iterator[memoryview]:
    """Fill this thread's reusable buffer with `readinto` until it returns nothing; yields the filled part.

    One stream per thread at a time: a second one in the same thread would overwrite the first's piece.
    """
    buffer = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = memoryview(bytearray(CHUNK))
    while True:
        count = readinto(buffer)
        if not count:
            return
        yield buffer[:count]


def stream_blob(source: Registry, repo: str, digest: str, size: Optional[int] = None) -> Tuple[Any, Iterator[Any]]:
    """Open a blob for streaming; its pieces are views of a per-thread buffer (see `read_views`).
    A response whose length differs from the expected `size` is refused before anything is read."""
    resp = source.open_blob(repo, digest)
    length = resp.headers.get("Content-Length")
    if size is not None and length is not None and length.isdigit() and int(length) != size:
        resp.close()
        raise RegistryError(f"{source.host}/{repo}@{digest}: {length} bytes served, {size} expected")
    return resp, resp.iter_views()
