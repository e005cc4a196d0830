"""Lab component: a real Keycloak (keycloak-quarkus-dist from Maven Central) with the realm Renku uses.

The distribution is fetched and unpacked by `lab/build-binaries.sh` into the build cache outside the
repository (`<cache>/keycloak-<version>`). It runs as a plain JVM process on loopback, HTTPS only, with a
certificate from the lab CA; health is read from the management interface. The server is built once
(`kc.sh build`, options recorded in a stamp file beside the distribution) and then started with
`start --optimized`, which is the production start and skips Quarkus' re-augmentation on every start.
The database is Keycloak's file-backed H2 (`dev-file`) in the lab state.

`after_up` creates, through Keycloak's admin REST API, what a Renku installation has in Keycloak and the
remote-cluster stage needs: realm `Renku`, realm role `renku-admin`, the confidential client
`renku-jupyterserver` (sessions' oauth2-proxy; the remote stage adds session origins to it), the public
client `renku-cli` (direct access grants, audience `renku-cli`: how an admin obtains a token for the
data-service API), a user with `renku-admin` and one without.

Run by the lab (`make lab-up`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import labcore

VERSION = os.environ.get("LAB_KEYCLOAK_VERSION", "26.5.6")
HOME = labcore.CACHE / f"keycloak-{VERSION}"
PORT = 18443
MANAGEMENT_PORT = 18444
URL = f"https://{labcore.LOOPBACK}:{PORT}"
DATA = labcore.STATE / "keycloak"
REALM = "Renku"
ADMIN_ROLE = "renku-admin"
SESSIONS_CLIENT = "renku-jupyterserver"
TOKEN_CLIENT = "renku-cli"
MASTER_ADMIN = "lab-admin"
RENKU_ADMIN = "lab-renku-admin"
RENKU_USER = "lab-renku-user"
# options fixed at build time; a change rebuilds the server once
BUILD_OPTIONS = ["--db=dev-file", "--health-enabled=true"]
HEAP = "-Xms64m -Xmx512m"
# Keycloak 26 supports Java 17 and 21; the first JDK found is used ($LAB_KEYCLOAK_JAVA_HOME wins)
JDKS = ("/usr/lib/jvm/java-21-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/default-java")


def java_home() -> str:
    wanted = os.environ.get("LAB_KEYCLOAK_JAVA_HOME")
    for candidate in ([wanted] if wanted else []) + list(JDKS):
        if (Path(candidate) / "bin" / "java").exists():
            return candidate
    raise SystemExit(
        "keycloak: no JDK 17 or 21 found (looked in " + ", ".join(JDKS) + "); install default-jdk-headless "
        "(lab/install-deps.sh) or set LAB_KEYCLOAK_JAVA_HOME"
    )


def secret(name: str) -> str:
    """A password kept in the lab state (created once, mode 0600)."""
    path = labcore.STATE / f"keycloak-{name}.password"
    if not path.exists():
        labcore.write_private(path, secrets.token_urlsafe(18).encode())
    return path.read_text().strip()


def kc_env() -> dict[str, str]:
    return {"JAVA_HOME": java_home(), "JAVA_OPTS_KC_HEAP": HEAP, "KC_LOG_CONSOLE_COLOR": "false"}


def build() -> None:
    """`kc.sh build` once per option set; the stamp beside the distribution records the options built."""
    script = HOME / "bin" / "kc.sh"
    if not script.exists():
        raise SystemExit(f"keycloak: {HOME} is missing; run `make lab-binaries` (lab/build-binaries.sh) first")
    stamp = HOME / ".lab-build"
    if stamp.exists() and stamp.read_text() == " ".join(BUILD_OPTIONS):
        return
    labcore.log(f"keycloak: building the server once ({' '.join(BUILD_OPTIONS)})")
    done = subprocess.run(
        ["/bin/sh", str(script), "build", *BUILD_OPTIONS],
        env={**os.environ, **kc_env()},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"keycloak: `kc.sh build` failed:\n{(done.stdout + done.stderr)[-2000:]}")
    stamp.write_text(" ".join(BUILD_OPTIONS))


# --------------------------------------------------------------------------------------------------
# lab hooks


def daemons(ca: labcore.LabCA) -> list[labcore.Daemon]:
    crt, key = ca.issue("keycloak", "keycloak.lab", [labcore.LOOPBACK, "localhost", "keycloak.lab"])
    DATA.mkdir(parents=True, exist_ok=True)
    argv = [
        "/bin/sh",  # kc.sh forwards SIGTERM to the JVM it starts, so stopping this pid stops Keycloak
        str(HOME / "bin" / "kc.sh"),
        "start",
        "--optimized",
        f"--http-host={labcore.LOOPBACK}",
        "--http-enabled=false",
        f"--https-port={PORT}",
        f"--https-certificate-file={crt}",
        f"--https-certificate-key-file={key}",
        f"--http-management-port={MANAGEMENT_PORT}",
        f"--hostname={URL}",
        f"--db-url=jdbc:h2:file:{DATA / 'keycloakdb'};NON_KEYWORDS=VALUE",
        "--log-level=WARN,org.keycloak.services:INFO,io.quarkus:INFO",
    ]
    env = {
        **kc_env(),
        # used only when the master realm is created (first start); the lab keeps the password in its state
        "KC_BOOTSTRAP_ADMIN_USERNAME": MASTER_ADMIN,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": secret("admin"),
    }
    health = labcore.https_ok(f"https://{labcore.LOOPBACK}:{MANAGEMENT_PORT}/health/ready")
    return [labcore.Daemon("keycloak", argv, health, env=env, prepare=build)]


def env() -> dict[str, str]:
    have_state = labcore.STATE.exists()
    return {
        "LAB_KEYCLOAK_URL": URL,
        "LAB_KEYCLOAK_REALM": REALM,
        "LAB_KEYCLOAK_ADMIN_USER": MASTER_ADMIN,
        "LAB_KEYCLOAK_ADMIN_PASSWORD": secret("admin") if have_state else "",
        "LAB_KEYCLOAK_SESSIONS_CLIENT": SESSIONS_CLIENT,
        "LAB_KEYCLOAK_TOKEN_CLIENT": TOKEN_CLIENT,
        "LAB_KEYCLOAK_RENKU_ADMIN_USER": RENKU_ADMIN,
        "LAB_KEYCLOAK_RENKU_ADMIN_PASSWORD": secret(RENKU_ADMIN) if have_state else "",
        "LAB_KEYCLOAK_RENKU_USER": RENKU_USER,
        "LAB_KEYCLOAK_RENKU_USER_PASSWORD": secret(RENKU_USER) if have_state else "",
    }


def after_up(env: dict[str, str]) -> None:
    admin = AdminApi(env["LAB_CA"], secret("admin"))
    admin.ensure_realm()
    admin.ensure_role()
    admin.ensure_client(
        {
            "clientId": SESSIONS_CLIENT,
            "publicClient": False,
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "redirectUris": ["https://renku.lab.internal/*"],
            "webOrigins": ["https://renku.lab.internal"],
        }
    )
    admin.ensure_client(
        {
            "clientId": TOKEN_CLIENT,
            "publicClient": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": True,
            "attributes": {"oauth2.device.authorization.grant.enabled": "true"},
            "protocolMappers": [
                {
                    "name": "audience renku-cli",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.client.audience": TOKEN_CLIENT, "access.token.claim": "true"},
                }
            ],
        }
    )
    admin.ensure_user(RENKU_ADMIN, secret(RENKU_ADMIN), admin_role=True)
    admin.ensure_user(RENKU_USER, secret(RENKU_USER), admin_role=False)


# --------------------------------------------------------------------------------------------------
# admin REST API


class AdminApi:
    """Keycloak's admin REST API as the master realm's admin (TLS verified against the lab CA)."""

    def __init__(self, ca: str, password: str) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca
        resp = self.session.post(
            f"{URL}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli", "username": MASTER_ADMIN, "password": password},
            timeout=30,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        self.base = f"{URL}/admin/realms"

    def get(self, path: str, **params: Any) -> Any:
        resp = self.session.get(f"{self.base}{path}", params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def send(self, method: str, path: str, body: Any) -> None:
        resp = self.session.request(method, f"{self.base}{path}", json=body, timeout=30)
        if resp.status_code >= 400:
            raise SystemExit(f"keycloak: {method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")

    def ensure_realm(self) -> None:
        if not any(r["realm"] == REALM for r in self.get("")):
            self.send("POST", "", {"realm": REALM, "enabled": True})

    def ensure_role(self) -> None:
        if not any(r["name"] == ADMIN_ROLE for r in self.get(f"/{REALM}/roles")):
            self.send("POST", f"/{REALM}/roles", {"name": ADMIN_ROLE, "description": "Renku administrator"})

    def ensure_client(self, rep: dict[str, Any]) -> None:
        """Created once; later runs leave it alone (the remote stage owns its redirect URIs)."""
        if not self.get(f"/{REALM}/clients", clientId=rep["clientId"]):
            self.send("POST", f"/{REALM}/clients", {"protocol": "openid-connect", "enabled": True, **rep})

    def ensure_user(self, username: str, password: str, admin_role: bool) -> None:
        found = self.get(f"/{REALM}/users", username=username, exact="true")
        if not found:
            # first/last name and a verified e-mail: Keycloak 26's user profile refuses logins without them
            self.send(
                "POST",
                f"/{REALM}/users",
                {
                    "username": username,
                    "enabled": True,
                    "email": f"{username}@renku.lab.internal",
                    "emailVerified": True,
                    "firstName": "Lab",
                    "lastName": username,
                },
            )
            found = self.get(f"/{REALM}/users", username=username, exact="true")
        user_id = found[0]["id"]
        credential = {"type": "password", "value": password, "temporary": False}
        self.send("PUT", f"/{REALM}/users/{user_id}/reset-password", credential)
        if admin_role:
            role = self.get(f"/{REALM}/roles/{ADMIN_ROLE}")
            self.send("POST", f"/{REALM}/users/{user_id}/role-mappings/realm", [role])
