"""Lab component: a Renku data-service "compute resource control" API that checks the contract.

Every request and every response is validated against the OpenAPI spec of renku-data-services v0.79.0
(`renku-data-services-crc-api.spec.yaml`, loaded at start from the shared reference directory beside the
repository, never re-typed). State (clusters, resource pools) is kept in a JSON file in the lab state, so
create, patch and get are real round-trips. The v0.79.0 quirk is reproduced: POST /clusters does not
store `session_ingress_use_default_cluster_tls_cert`; a client must PATCH it after creating.

Auth as renku-data-services does it (`authn/keycloak.py`): a bearer access token issued by the lab's
Keycloak (`lab/components/keycloak.py`) for realm Renku, its RS256 signature checked against the realm's
JWKS (fetched over TLS verified with the lab CA, fetched again for an unknown key id), not expired, issuer
the realm, audience one of Renku's clients; the admin endpoints then require the realm role `renku-admin`
in `realm_access.roles`. A token signed by anyone else or expired gets 401, a valid one without the role 403.

`after_up` also gives the remote cluster the StorageClass `lab-standard` the remote-cluster demo asks for.

Run by the lab (`make lab-up`); `python dataservice.py serve --help` for the options.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import labcore

PORT = 17480
BASE = "/api/data"
SPEC_NAME = "renku-data-services-crc-api.spec.yaml"
STATE_FILE = labcore.STATE / "dataservice.json"
# renku-data-services accepts access tokens for these audiences and treats this realm role as admin
AUDIENCES = ("renku", "renku-ui", "renku-cli", "swagger")
ADMIN_ROLE = "renku-admin"
LEEWAY = 30  # seconds of clock skew allowed on exp
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def spec_path() -> Path:
    """The shared reference directory beside the repository (`<repo>/../shared/reference`, or
    $AIRGAP_REFERENCE_DIR)."""
    return labcore.REFERENCE / SPEC_NAME


def load_spec() -> dict[str, Any]:
    path = spec_path()
    if not path.exists():
        raise SystemExit(
            f"dataservice: the API spec {path} is missing; it is expected in shared/reference beside the repository"
        )
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------------------------------
# lab hooks


def daemons(ca: labcore.LabCA) -> list[labcore.Daemon]:
    from components import keycloak

    crt, key = ca.issue("dataservice", "dataservice.lab", [labcore.LOOPBACK, "localhost", "dataservice.lab"])
    return [
        labcore.Daemon(
            "dataservice",
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "serve",
                "--port",
                str(PORT),
                "--cert",
                str(crt),
                "--key",
                str(key),
                "--state",
                str(STATE_FILE),
                "--issuer",
                f"{keycloak.URL}/realms/{keycloak.REALM}",
                "--ca",
                str(ca.cert_path),
            ],
            labcore.https_ok(f"https://{labcore.LOOPBACK}:{PORT}{BASE}/version"),
            optional=True,
        )
    ]


DEMO_STORAGE_CLASS = "lab-standard"


def after_up(env: dict[str, str]) -> None:
    """The remote cluster of the demo offers a StorageClass for session volumes, as a real one would."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = client.StorageV1Api(config.new_client_from_config(env["KUBECONFIG_REMOTE"]))
    body = {"metadata": {"name": DEMO_STORAGE_CLASS}, "provisioner": "kubernetes.io/no-provisioner"}
    try:
        api.create_storage_class(body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def env() -> dict[str, str]:
    return {
        "LAB_DATA_SERVICE_URL": f"https://{labcore.LOOPBACK}:{PORT}{BASE}",
    }


# --------------------------------------------------------------------------------------------------
# state


def new_ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


class Store:
    """Clusters and resource pools in a JSON file; every change is written through."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {"clusters": {}, "pools": {}, "next_pool": 1, "next_class": 1}
        if path.exists():
            self.data.update(json.loads(path.read_text()))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def next_id(self, counter: str) -> int:
        value = self.data[counter]
        self.data[counter] = value + 1
        return value


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": 1000 + self.status, "message": self.message}
        if self.detail:
            error["detail"] = self.detail
        return {"error": error}


def _class_with_id(store: Store, cls: dict[str, Any], keep_id: int | None = None) -> dict[str, Any]:
    out = {"tolerations": [], "node_affinities": [], "quota_enforced": False, **cls}
    out["id"] = keep_id if keep_id is not None else store.next_id("next_class")
    return out


def _pool_out(pool: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in pool.items() if k != "cluster_id"}
    if pool.get("cluster_id"):
        out["cluster"] = {"id": pool["cluster_id"]}
    return out


class Api:
    """The handlers; each returns (status, body)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # clusters
    def list_clusters(self) -> tuple[int, Any]:
        return 200, list(self.store.data["clusters"].values())

    def create_cluster(self, body: dict[str, Any]) -> tuple[int, Any]:
        clusters = self.store.data["clusters"]
        if any(c["name"] == body["name"] for c in clusters.values()):
            raise ApiError(409, f"a cluster named {body['name']!r} exists")
        cluster = {**body, "id": new_ulid()}
        cluster["session_ingress_use_default_cluster_tls_cert"] = False  # the v0.79.0 quirk
        clusters[cluster["id"]] = cluster
        return 201, cluster

    def _cluster(self, cluster_id: str) -> dict[str, Any]:
        try:
            return self.store.data["clusters"][cluster_id]
        except KeyError:
            raise ApiError(404, f"cluster {cluster_id} does not exist") from None

    def get_cluster(self, cluster_id: str) -> tuple[int, Any]:
        return 200, self._cluster(cluster_id)

    def put_cluster(self, cluster_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        self._cluster(cluster_id)
        cluster = {"session_ingress_use_default_cluster_tls_cert": False, **body, "id": cluster_id}
        self.store.data["clusters"][cluster_id] = cluster
        return 200, cluster

    def patch_cluster(self, cluster_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        cluster = self._cluster(cluster_id)
        for key, value in body.items():
            if key in ("session_tls_secret_name", "service_account_name") and value == "":
                cluster.pop(key, None)
            else:
                cluster[key] = value
        return 200, cluster

    def delete_cluster(self, cluster_id: str) -> tuple[int, Any]:
        self.store.data["clusters"].pop(cluster_id, None)
        return 204, None

    # resource pools
    def list_pools(self) -> tuple[int, Any]:
        # the list (ResourcePoolWithIdFiltered) names the cluster as `cluster_id`, a single pool as `cluster.id`
        return 200, list(self.store.data["pools"].values())

    def create_pool(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("cluster_id"):
            self._cluster(body["cluster_id"])
        pool = {"platform": "linux/amd64", **body}
        pool["id"] = self.store.next_id("next_pool")
        pool["classes"] = [_class_with_id(self.store, c) for c in body["classes"]]
        if "quota" in body:
            pool["quota"] = {"id": str(uuid.uuid4()), **body["quota"]}
        self.store.data["pools"][str(pool["id"])] = pool
        return 201, _pool_out(pool)

    def _pool(self, pool_id: str) -> dict[str, Any]:
        try:
            return self.store.data["pools"][str(int(pool_id))]
        except (KeyError, ValueError):
            raise ApiError(404, f"resource pool {pool_id} does not exist") from None

    def get_pool(self, pool_id: str) -> tuple[int, Any]:
        return 200, _pool_out(self._pool(pool_id))

    def patch_pool(self, pool_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        pool = self._pool(pool_id)
        for key, value in body.items():
            if key == "classes":
                by_id = {c["id"]: c for c in pool["classes"]}
                for patch in value:
                    if patch["id"] not in by_id:
                        raise ApiError(404, f"resource class {patch['id']} is not in pool {pool_id}")
                    by_id[patch["id"]].update(patch)
            elif key == "quota":
                pool["quota"] = {**pool.get("quota", {"id": str(uuid.uuid4())}), **value}
            elif key == "remote" and value == {}:
                pool.pop("remote", None)
            else:
                pool[key] = value
        return 200, _pool_out(pool)

    def put_pool(self, pool_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        old = self._pool(pool_id)
        pool = {**body, "id": old["id"]}
        pool["classes"] = [_class_with_id(self.store, c, c.get("id")) for c in body["classes"]]
        self.store.data["pools"][str(old["id"])] = pool
        return 200, _pool_out(pool)

    def delete_pool(self, pool_id: str) -> tuple[int, Any]:
        self.store.data["pools"].pop(str(pool_id), None)
        return 204, None

    def add_class(self, pool_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        pool = self._pool(pool_id)
        cls = _class_with_id(self.store, body)
        pool["classes"].append(cls)
        return 201, cls

    def patch_class(self, pool_id: str, class_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        for cls in self._pool(pool_id)["classes"]:
            if str(cls["id"]) == class_id:
                cls.update(body)
                return 200, cls
        raise ApiError(404, f"resource class {class_id} is not in pool {pool_id}")

    def remove_class(self, pool_id: str, class_id: str) -> tuple[int, Any]:
        pool = self._pool(pool_id)
        pool["classes"] = [c for c in pool["classes"] if str(c["id"]) != class_id]
        return 204, None

    def route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        table = {
            ("GET", "version"): lambda: (200, {"version": "0.79.0-lab"}),
            ("GET", "clusters"): self.list_clusters,
            ("POST", "clusters"): lambda: self.create_cluster(body),
            ("GET", "resource_pools"): self.list_pools,
            ("POST", "resource_pools"): lambda: self.create_pool(body),
        }
        if len(parts) == 1 and (method, parts[0]) in table:
            return table[(method, parts[0])]()
        if len(parts) == 3 and parts[0] == "resource_pools" and parts[2] == "classes" and method == "POST":
            return self.add_class(parts[1], body)
        if len(parts) == 4 and parts[0] == "resource_pools" and parts[2] == "classes" and method == "DELETE":
            return self.remove_class(parts[1], parts[3])
        if len(parts) == 4 and parts[0] == "resource_pools" and parts[2] == "classes" and method == "PATCH":
            return self.patch_class(parts[1], parts[3], body)
        if len(parts) == 2 and parts[0] in ("clusters", "resource_pools"):
            kind = "cluster" if parts[0] == "clusters" else "pool"
            handler = getattr(self, f"{method.lower()}_{kind}", None)
            if handler is not None:
                return handler(parts[1], body) if method in ("PUT", "PATCH") else handler(parts[1])
        raise ApiError(404, f"{method} {BASE}/{'/'.join(parts)} is not served by the lab data-service")


# --------------------------------------------------------------------------------------------------
# Keycloak access tokens


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class TokenVerifier:
    """RS256 access tokens of one Keycloak realm, checked against its JWKS."""

    def __init__(self, issuer: str, ca_file: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.ca_file = ca_file
        self.keys: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.fetched = 0.0

    def _fetch_keys(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

        url = f"{self.issuer}/protocol/openid-connect/certs"
        with requests.Session() as session:
            session.trust_env = False  # no proxy, and REQUESTS_CA_BUNDLE must not replace the lab CA
            resp = session.get(url, verify=self.ca_file, timeout=10)
            resp.raise_for_status()
            jwks = resp.json()
        keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") == "RSA" and jwk.get("use", "sig") == "sig":
                numbers = RSAPublicNumbers(int.from_bytes(_b64(jwk["e"]), "big"), int.from_bytes(_b64(jwk["n"]), "big"))
                keys[jwk["kid"]] = numbers.public_key()
        self.keys, self.fetched = keys, time.monotonic()

    def _key(self, kid: str) -> Any:
        with self.lock:
            if kid not in self.keys and time.monotonic() - self.fetched > 5:  # a rotated key: look again, not too often
                try:
                    self._fetch_keys()
                except (OSError, requests.RequestException) as exc:
                    raise ApiError(503, f"the realm's keys cannot be read from {self.issuer}: {exc}") from None
            return self.keys.get(kid)

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; ApiError 401 otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header, claims = json.loads(_b64(head_b64)), json.loads(_b64(body_b64))
            signature = _b64(sig_b64)
        except ValueError:
            raise ApiError(401, "the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise ApiError(401, f"token algorithm {header.get('alg')!r} is not accepted (RS256 only)")
        key = self._key(str(header.get("kid")))
        if key is None:
            raise ApiError(401, f"the token is not signed by realm {self.issuer} (unknown key id)")
        try:
            key.verify(signature, f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ApiError(401, f"the token's signature does not verify against the keys of {self.issuer}") from None
        if claims.get("iss") != self.issuer:
            raise ApiError(401, f"the token was issued by {claims.get('iss')!r}, not {self.issuer}")
        if not isinstance(claims.get("exp"), int) or claims["exp"] + LEEWAY < time.time():
            raise ApiError(401, "the token has expired")
        audience = claims.get("aud")
        audiences = {audience} if isinstance(audience, str) else set(audience or [])
        if not audiences & set(AUDIENCES):
            raise ApiError(401, f"the token's audience {sorted(audiences)} is none of {', '.join(AUDIENCES)}")
        return claims


def require_admin(verifier: TokenVerifier, authorization: str | None) -> None:
    """401 without a valid token, 403 for a valid token of a user without the renku-admin realm role."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "a bearer access token from Keycloak is required")
    claims = verifier.claims(token.strip())
    roles = (claims.get("realm_access") or {}).get("roles") or []
    if ADMIN_ROLE not in roles:
        user = claims.get("preferred_username") or claims.get("sub")
        raise ApiError(403, f"user {user!r} is not a Renku admin: the realm role {ADMIN_ROLE} is required")


# --------------------------------------------------------------------------------------------------
# HTTP with contract validation


def make_handler(openapi: Any, api: Api, verifier: TokenVerifier, host_url: str) -> type[BaseHTTPRequestHandler]:
    from openapi_core.testing import MockRequest, MockResponse

    class Handler(BaseHTTPRequestHandler):
        server_version = "lab-dataservice/1"

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            path = self.path.partition("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type", "application/json").split(";")[0]
            request = MockRequest(host_url, self.command, path, data=raw or None, content_type=content_type)
            try:
                if not path.startswith(BASE + "/") and path != BASE:
                    raise ApiError(404, f"{path} is outside {BASE}")
                public = self.command == "GET" and path.endswith("/version")
                if not public:
                    require_admin(verifier, self.headers.get("Authorization"))
                try:
                    openapi.validate_request(request)
                except Exception as exc:  # every openapi-core validation error: the request breaks the contract
                    raise ApiError(422, "the request does not match the API spec", _explain(exc)) from None
                body = json.loads(raw) if raw else None
                parts = [p for p in path[len(BASE) :].split("/") if p]
                with api.store.lock:
                    status, out = api.route(self.command, parts, body)
                    api.store.save()
            except ApiError as err:
                status, out = err.status, err.body()
            data = b"" if out is None else json.dumps(out).encode()
            response = MockResponse(data, status_code=status, content_type="application/json")
            if status != 204:
                try:
                    openapi.validate_response(request, response)
                except Exception as exc:  # a bug here, never the client's: answer 500 and say why
                    self.log_message("response breaks the contract: %s", _explain(exc))
                    status, out = 500, ApiError(500, "response breaks the API spec", _explain(exc)).body()
            self._send(status, out)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


def _explain(exc: Exception) -> str:
    parts = [str(exc)]
    for sub in getattr(exc, "schema_errors", None) or []:
        parts.append(f"{'/'.join(str(p) for p in sub.path) or '(body)'}: {sub.message}")
    cause = exc.__cause__
    for sub in getattr(cause, "schema_errors", None) or []:
        parts.append(f"{'/'.join(str(p) for p in sub.path) or '(body)'}: {sub.message}")
    return "; ".join(parts)


def serve(args: argparse.Namespace) -> None:
    from openapi_core import Config, OpenAPI

    # the upstream spec itself does not pass the spec linter (a `default: null` on a non-nullable number);
    # requests and responses are still validated against every schema in it
    openapi = OpenAPI.from_dict(load_spec(), config=Config(spec_validator_cls=None))
    verifier = TokenVerifier(args.issuer, args.ca)
    host_url = f"https://{labcore.LOOPBACK}:{args.port}"
    server = ThreadingHTTPServer(
        (labcore.LOOPBACK, args.port), make_handler(openapi, Api(Store(Path(args.state))), verifier, host_url)
    )
    labcore.use_tls(server, args.cert, args.key)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve")
    run.add_argument("--port", type=int, default=PORT)
    run.add_argument("--cert", required=True)
    run.add_argument("--key", required=True)
    run.add_argument("--state", default=str(STATE_FILE))
    run.add_argument("--issuer", required=True, help="Keycloak realm URL whose tokens are accepted")
    run.add_argument("--ca", required=True, help="CA of Keycloak's TLS certificate")
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
