"""No secret in any output: site.yml at -vvv --diff, run the way AWX runs it (ansible-runner), from a fresh lab state.

The demo's credentials are deleted first (ServiceAccounts and their token Secrets, the pull Secret, the remote-cluster
kubeconfig Secret, the deployer kubeconfig and token files), so the run creates every one of them again. Then every
secret value the lab and the run hold is looked for in the playbook output (the runner's stdout), the runner's job
events and artifacts, and every file the run wrote outside `.lab/`. A hit names the file, the line and which secret;
the value itself is never printed.

site.yml changes the lab's shared objects, so the test runs alone: `make integration` runs it after the parallel
tests, and a pytest-xdist worker skips it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[2]
# Objects holding a credential that the demo's stages create (inventories/lab and the roles' defaults), deleted
# before the run as (cluster, kind, namespace, name). A token Secret's token is the same as long as its
# ServiceAccount lives (the token controller signs the same claims), so the ServiceAccounts go too.
DEMO_OBJECTS = [
    ("local", "ServiceAccount", "demo-app", "gitlab-deployer"),
    ("local", "Secret", "demo-app", "gitlab-deployer-token"),
    ("remote", "ServiceAccount", "renku-sessions", "renku-data-service"),
    ("remote", "Secret", "renku-sessions", "renku-data-service-token"),
    ("local", "Secret", "renku", "renku-remote-clusters"),
    ("local", "Secret", "renku", "internal-registry-pull"),
]
# The demo release's own Secrets (the chart's generated passwords, keys and certificates), found by the label
# release_apply gives every object of a release: deleted too, so the run creates them as a first install does.
DEMO_RELEASE_SECRETS = ("local", "renku", "airgap.renku/release=renku")
# Not searched for files the run wrote: the lab's state, version control, the virtualenv, the collection link, caches.
SKIPPED_DIRS = {".lab", ".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache"}
# Other ansible processes' module payloads (their arguments included) while they run; this run's go to its own TMPDIR.
SHARED_ANSIBLE_TMP = Path.home() / ".ansible" / "tmp"
HOME_TOOL_DIRS = (".ansible", ".kube", ".cache/helm", ".config/helm", ".local/share/helm", ".docker", ".config/git")
MIN_SECRET_LENGTH = 8  # shorter Secret values (ports, "true", user names) are not credentials
# Keys of Secrets holding a credential (token Secrets' `token`, `tls.key`, chart passwords, client secrets, cookie
# keys, connection URIs with a password); other keys hold configuration (host names, image references).
CREDENTIAL_KEY = re.compile(r"token|password|secret|key|conn_uri|encryption|auth|credential", re.I)
# Any JWT is a bearer token (service-account tokens, Keycloak access tokens issued during the run).
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")

pytestmark = pytest.mark.lab


@dataclass(frozen=True)
class Secret:
    name: str  # where the value comes from, for the verdict; never the value
    value: str


@dataclass(frozen=True)
class Hit:
    path: Path
    line: int
    secret: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.secret}"


# --------------------------------------------------------------------------------------------------
# the secrets the lab and the run hold


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def lab_env_secrets(lab_env: dict[str, str]) -> Iterator[Secret]:
    """Passwords and tokens of `make -s lab-env` (keys ending in PASSWORD, TOKEN or SECRET), with the forms a URL
    or an HTTP Basic header gives a password (its user is the key ending in USER instead, or the key's prefix)."""
    for key, value in lab_env.items():
        if not value or not re.search(r"(PASSWORD|TOKEN|SECRET)$", key):
            continue
        yield Secret(f"lab env {key}", value)
        yield Secret(f"lab env {key} (base64)", b64(value))
        if key.endswith("_PASSWORD"):
            yield Secret(f"lab env {key} (URL-quoted)", quote(value, safe=""))
            prefix = key.removesuffix("_PASSWORD")
            user = lab_env.get(f"{prefix}_USER") or lab_env.get(prefix, "")
            if user:
                yield Secret(f"lab env {key} as HTTP Basic with its user", b64(f"{user}:{value}"))


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def dockerconfig_secrets(label: str, raw: str) -> Iterator[Secret]:
    yield Secret(f"{label} (base64)", raw)
    decoded = _decoded(raw) or "{}"
    for registry, entry in (json.loads(decoded).get("auths") or {}).items():
        for key in ("auth", "password", "identitytoken"):
            if entry.get(key):
                yield Secret(f"{label} auths[{registry}].{key}", entry[key])


def user_credentials(label: str, users: list) -> Iterator[Secret]:
    """Tokens (whole and base64) and client keys of a kubeconfig's `users`."""
    for entry in users or []:
        user = (entry or {}).get("user") or {}
        name = f"{label} user {entry.get('name')}"
        if user.get("token"):
            yield Secret(f"{name} token", user["token"])
            yield Secret(f"{name} token (base64)", b64(user["token"]))
        if user.get("client-key-data"):
            yield Secret(f"{name} client key", user["client-key-data"])


def is_credential(text: str) -> bool:
    """A private key, or one opaque word; not a name, URL, image reference or list (`NB_..._TLS_SECRET: renku-tls`).
    A URI with a password inside is left out: the password is a value of its own."""
    if "PRIVATE KEY-----" in text:
        return True
    if len(text) < MIN_SECRET_LENGTH or re.search(r"\s|://|[:@]", text):
        return False
    return not re.fullmatch(r"[a-z0-9]+([-.][a-z0-9]+)+", text)


def as_kubeconfig(text: str) -> dict | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) and data.get("kind") == "Config" else None


def secret_object_secrets(cluster: str, secret: client.V1Secret) -> Iterator[Secret]:
    """Every credential of one Secret, as stored (base64) and decoded: a token Secret's token, a pull Secret's auths,
    the tokens of a kubeconfig kept in a Secret, and the values of keys named like a credential."""
    label = f"Secret {cluster}:{secret.metadata.namespace}/{secret.metadata.name}"
    for key, raw in (secret.data or {}).items():
        if key == ".dockerconfigjson":
            yield from dockerconfig_secrets(f"{label} .dockerconfigjson", raw)
            continue
        text = _decoded(raw)
        kubeconfig = as_kubeconfig(text) if text else None
        if kubeconfig is not None:
            yield Secret(f"{label} key {key} (a kubeconfig, base64)", raw)
            yield from user_credentials(f"{label} key {key}", kubeconfig.get("users"))
        elif text and CREDENTIAL_KEY.search(key) and is_credential(text.strip()):
            yield Secret(f"{label} key {key}", text.strip())
            yield Secret(f"{label} key {key} (base64)", raw)


def cluster_secrets(cluster: str, kubeconfig: str) -> Iterator[Secret]:
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    for secret in api.list_secret_for_all_namespaces().items:
        yield from secret_object_secrets(cluster, secret)


def kubeconfig_secrets(path: Path) -> Iterator[Secret]:
    """Tokens and client keys of a kubeconfig file (whole and base64) and the file's base64 one-liner."""
    data = as_kubeconfig(path.read_text())
    if data is None:
        return
    yield Secret(f"kubeconfig {path.name} as base64", b64(path.read_text()))
    yield from user_credentials(f"kubeconfig {path.name}", data.get("users"))


def lab_files_secrets(state: Path) -> Iterator[Secret]:
    """Kubeconfigs and token or password files the lab and the run keep under the lab state directory."""
    for path in sorted(state.rglob("*")):
        if not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        if path.suffix in (".kubeconfig", ".yaml") and path.name.endswith(("kubeconfig", ".kubeconfig")):
            yield from kubeconfig_secrets(path)
        elif path.suffix == ".token" or path.name in ("git-password", "dataservice.token"):
            value = path.read_text().strip()
            if value:
                yield Secret(f"{path.name} (lab state)", value)
                yield Secret(f"{path.name} (lab state, base64)", b64(value))


def all_secrets(lab_env: dict[str, str]) -> list[Secret]:
    found = [
        *lab_env_secrets(lab_env),
        *cluster_secrets("local", lab_env["KUBECONFIG_LOCAL"]),
        *cluster_secrets("remote", lab_env["KUBECONFIG_REMOTE"]),
        *lab_files_secrets(Path(lab_env["LAB_STATE"])),
    ]
    with_json_forms = found + [
        Secret(f"{s.name} (JSON-escaped)", json.dumps(s.value)[1:-1])
        for s in found
        if json.dumps(s.value)[1:-1] != s.value
    ]
    unique: dict[str, Secret] = {}
    for secret in with_json_forms:
        unique.setdefault(secret.value, secret)
    return [s for s in unique.values() if len(s.value) >= MIN_SECRET_LENGTH]


# --------------------------------------------------------------------------------------------------
# where to look


def files_under(root: Path, since: float) -> Iterator[Path]:
    """Regular files below `root` modified at or after `since`, outside SKIPPED_DIRS; symlinks not followed."""
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and Path(directory, d) != SHARED_ANSIBLE_TMP]
        for name in files:
            path = Path(directory) / name
            try:
                if not path.is_symlink() and path.stat().st_mtime >= since:
                    yield path
            except FileNotFoundError:
                continue


def home_files(since: float) -> Iterator[Path]:
    """Files written since `since` in the home directory itself and where Ansible, Helm, kubectl, git and container
    tools keep state (not the Go and pip caches of the lab build)."""
    home = Path.home()
    for path in home.iterdir():
        if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
            yield path
    for tool_dir in HOME_TOOL_DIRS:
        if (home / tool_dir).is_dir():
            yield from files_under(home / tool_dir, since)


def find_secrets(path: Path, secrets: Iterable[Secret]) -> list[Hit]:
    """Every occurrence of a known secret, and of any JWT, in the file (none when it is gone already)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:  # another process's temporary file
        return []
    hits = [Hit(path, text.count("\n", 0, m.start()) + 1, "a JWT (bearer token)") for m in JWT.finditer(text)]
    for secret in secrets:
        start = text.find(secret.value)
        while start != -1:
            hits.append(Hit(path, text.count("\n", 0, start) + 1, secret.name))
            start = text.find(secret.value, start + 1)
    return hits


def scan(paths: Iterable[Path], secrets: list[Secret]) -> list[Hit]:
    return [hit for path in paths for hit in find_secrets(path, secrets)]


# --------------------------------------------------------------------------------------------------
# a fresh lab state and the run


def delete_demo_credentials(lab_env: dict[str, str]) -> None:
    """DEMO_OBJECTS and the deployer kubeconfig, one-liner and token files: the run makes new credentials."""
    kubeconfigs = {"local": lab_env["KUBECONFIG_LOCAL"], "remote": lab_env["KUBECONFIG_REMOTE"]}
    for cluster, kind, namespace, name in DEMO_OBJECTS:
        api = client.CoreV1Api(config.new_client_from_config(kubeconfigs[cluster]))
        delete = api.delete_namespaced_service_account if kind == "ServiceAccount" else api.delete_namespaced_secret
        try:
            delete(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
    cluster, namespace, selector = DEMO_RELEASE_SECRETS
    api = client.CoreV1Api(config.new_client_from_config(kubeconfigs[cluster]))
    for secret in api.list_namespaced_secret(namespace, label_selector=selector).items:
        try:
            api.delete_namespaced_secret(secret.metadata.name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
    for path in (Path(lab_env["LAB_STATE"]) / "deployers").glob("*"):
        path.unlink()


def run_site(private_data_dir: Path) -> tuple[int, str, Path]:
    """site.yml -vvv --diff through ansible-runner; (rc, stdout, artifacts directory)."""
    import ansible_runner

    tmp = private_data_dir / "tmp"
    tmp.mkdir(parents=True)
    result = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        project_dir=str(ROOT),
        playbook=str(ROOT / "site.yml"),
        inventory=str(ROOT / "inventories" / "lab"),
        verbosity=3,
        # with `binary` the runner adds no playbook to the command line, so it is given here
        cmdline=f"--diff {ROOT / 'site.yml'}",
        binary=str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        envvars={
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "TMPDIR": str(tmp),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
        },
        quiet=True,
    )
    stdout = result.stdout.read()
    return result.rc, stdout, Path(result.config.artifact_dir)


@pytest.mark.skipif(
    bool(os.environ.get("PYTEST_XDIST_WORKER")),
    reason="site.yml changes the lab's shared objects: runs alone, after the parallel tests (make integration)",
)
def test_no_secret_in_any_output_of_site_yml(lab_env, tmp_path):
    delete_demo_credentials(lab_env)
    started = time.time()
    rc, stdout, artifacts = run_site(tmp_path / "runner")
    duration = time.time() - started
    assert rc == 0, stdout[-4000:]
    secrets = all_secrets(lab_env)
    assert any(s.name.startswith("Secret local:demo-app/gitlab-deployer-token") for s in secrets), (
        "the deployer's token Secret was not created again"
    )
    assert any(s.name.startswith("Secret local:renku/renku-postgresql") for s in secrets), (
        "the release's generated Secrets were not created again"
    )
    written = [
        *files_under(ROOT, started),
        *home_files(started),
        *files_under(tmp_path, 0),
    ]
    assert (artifacts / "stdout").exists() and any((artifacts / "job_events").iterdir())
    hits = scan(dict.fromkeys(written), secrets)
    print(
        f"site.yml -vvv --diff via ansible-runner: {duration:.0f}s; {len(secrets)} secret values "
        f"searched in {len(set(written))} files; {len(hits)} hits"
    )
    assert not hits, "secrets in the output or in files the run wrote:\n" + "\n".join(map(str, hits[:200]))
