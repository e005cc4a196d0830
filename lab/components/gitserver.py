"""Lab git server: `git http-backend` behind a small HTTPS server with a certificate from the lab CA.

The site's internal git for template repositories (and anything else that needs one): bare
repositories live under `<lab state>/git/<name>.git`; anyone may clone, pushing needs basic auth
(`LAB_GIT_USER` / `LAB_GIT_PASSWORD`). `after_up` seeds a couple of Renku-style template
repositories. Exports LAB_GIT_URL, LAB_GIT_USER, LAB_GIT_PASSWORD.

Run standalone: python lab/components/gitserver.py serve --port P --root DIR --cert C --key K --password-file F
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import labcore

PORT = 17443
USER = "lab-git"
ROOT = labcore.STATE / "git"
PASSWORD_FILE = labcore.STATE / "git-password"
# the demo's renku role rewrites renku-demo-template; the others stay as upstream ships them
TEMPLATES = ("renku-python-template", "renku-r-template", "renku-demo-template")

GITLAB_CI = """\
variables:
  GIT_STRATEGY: fetch
  GIT_LFS_SKIP_SMUDGE: 1
  DOCKER_TLS_CERTDIR: ""

stages:
  - build

image_build:
  stage: build
  image: docker:stable
  services:
    - docker:dind
  except:
    variables:
      - $CI_COMMIT_MESSAGE =~ /\\[skip build\\]/
  before_script:
    - docker login -u gitlab-ci-token -p $CI_JOB_TOKEN http://$CI_REGISTRY
  script: |
    CI_COMMIT_SHA_7=$(echo $CI_COMMIT_SHA | cut -c1-7)
    docker build --tag $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA_7 .
    docker push $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA_7
  tags:
    - image-build
"""


def password() -> str:
    if not PASSWORD_FILE.exists():
        labcore.write_private(PASSWORD_FILE, secrets.token_urlsafe(18).encode())
    return PASSWORD_FILE.read_text().strip()


def daemons(ca: labcore.LabCA) -> list[labcore.Daemon]:
    if shutil.which("git") is None:
        return []
    crt, key = ca.issue("gitserver", "git.lab", [labcore.LOOPBACK, "localhost", "git.lab"])
    ROOT.mkdir(parents=True, exist_ok=True)
    password()
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        "--port",
        str(PORT),
        "--root",
        str(ROOT),
        "--cert",
        str(crt),
        "--key",
        str(key),
        "--password-file",
        str(PASSWORD_FILE),
    ]
    return [
        labcore.Daemon("gitserver", argv, labcore.https_ok(f"https://{labcore.LOOPBACK}:{PORT}/healthz"), optional=True)
    ]


def env() -> dict[str, str]:
    return {
        "LAB_GIT_URL": f"https://{labcore.LOOPBACK}:{PORT}",
        "LAB_GIT_USER": USER,
        "LAB_GIT_PASSWORD": password(),
        "LAB_GIT_ROOT": str(ROOT),
    }


def after_up(lab_env: dict[str, str]) -> None:
    """Seed the template repositories (once; existing repositories are left as they are)."""
    if shutil.which("git") is None:
        return
    for name in TEMPLATES:
        if not (ROOT / f"{name}.git").exists():
            seed_repository(
                name,
                {
                    ".gitlab-ci.yml": GITLAB_CI,
                    "Dockerfile": "FROM python:3.12-slim\n",
                    "README.md": f"# {name}\n\nRenku project template.\n",
                },
            )


def _git(*args: str, cwd: Path | None = None) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    clean.update(
        {
            "GIT_AUTHOR_NAME": "lab",
            "GIT_AUTHOR_EMAIL": "lab@git.lab",
            "GIT_COMMITTER_NAME": "lab",
            "GIT_COMMITTER_EMAIL": "lab@git.lab",
            "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        }
    )
    subprocess.run(["git", *args], cwd=cwd, env=clean, check=True, capture_output=True)


def seed_repository(name: str, files: dict[str, str]) -> Path:
    """A bare repository `<root>/<name>.git` whose main branch holds `files` (deterministic commit)."""
    bare = ROOT / f"{name}.git"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _git("init", "-q", "-b", "main", str(work))
        for path, content in files.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(content)
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", f"{name}: initial template", cwd=work)
        _git("clone", "-q", "--bare", str(work), str(bare))
    _git("config", "http.receivepack", "true", cwd=bare)
    return bare


# --------------------------------------------------------------------------------------------------
# the server


class GitHandler(BaseHTTPRequestHandler):
    root: Path
    secret: str
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, b"ok\n")
            return
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authenticated_user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, given = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if user == USER and hmac.compare_digest(given, self.secret) else None

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        push = "git-receive-pack" in path or "service=git-receive-pack" in query
        user = self._authenticated_user()
        if push and user is None:
            self._reply(401, b"push needs authentication\n", {"WWW-Authenticate": 'Basic realm="lab git"'})
            return
        body = self._body() if self.command == "POST" else b""
        cgi_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        if user:
            cgi_env["REMOTE_USER"] = user
        proc = subprocess.run(["git", "http-backend"], input=body, env=cgi_env, capture_output=True)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        if proc.returncode != 0 and not proc.stdout:
            status, payload = 500, proc.stderr
        self._reply(status, payload, headers)


def serve(port: int, root: Path, cert: str, key: str, password_file: Path) -> None:
    GitHandler.root = root
    GitHandler.secret = password_file.read_text().strip()
    server = ThreadingHTTPServer((labcore.LOOPBACK, port), GitHandler)
    labcore.use_tls(server, cert, key)
    server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve")
    run.add_argument("--port", type=int, default=PORT)
    run.add_argument("--root", type=Path, default=ROOT)
    run.add_argument("--cert", required=True)
    run.add_argument("--key", required=True)
    run.add_argument("--password-file", type=Path, default=PASSWORD_FILE)
    args = parser.parse_args()
    serve(args.port, args.root, args.cert, args.key, args.password_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
