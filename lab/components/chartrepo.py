"""Lab chart repository: classic Helm repositories (index.yaml + packages) over HTTPS with the lab CA.

It plays the publishers of a Renku 2.19.3 install at one path each:

    https://127.0.0.1:17444/swissdatasciencecenter/   renku, amalthea-sessions, csi-rclone
                                                       (https://swissdatasciencecenter.github.io/helm-charts)
    https://127.0.0.1:17444/codecentric/              keycloakx (https://codecentric.github.io/helm-charts)
    https://127.0.0.1:17444/datashim/                 dlf-chart (https://swissdatasciencecenter.github.io/datashim)

The packages are the real chart sources in the shared reference directory (`<repo>/../shared/reference/charts`,
or $AIRGAP_REFERENCE_DIR/charts); they are never part of the repository. At start (and after every
`lab up`) the tree is laid out under `<lab state>/chartrepo/<publisher>/`: each package copied there
unchanged, and an `index.yaml` in Helm's repository format generated from the packages' Chart.yaml
(digest = sha256 of the package, relative urls, fixed `created` / `generated` times so the file is the
same on every machine). Only GET and HEAD; no directory listings. Exports LAB_CHART_REPO_URL,
LAB_CHART_REPO_ROOT and LAB_REFERENCE_CHARTS.

Run standalone: python lab/components/chartrepo.py serve --port P --root DIR --cert C --key K
                python lab/components/chartrepo.py layout [--root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import tarfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import labcore

PORT = 17444
ROOT = labcore.STATE / "chartrepo"
# publisher path -> package files (in shared/reference/charts), as shared/reference/charts/README.md says
PUBLISHERS: dict[str, tuple[str, ...]] = {
    "swissdatasciencecenter": (
        "renku-2.19.3.tgz",
        "amalthea-sessions-0.30.2.tgz",
        "csi-rclone-0.6.0.tgz",
        "csi-rclone-0.3.5.tgz",
    ),
    "codecentric": ("keycloakx-7.1.4.tgz",),
    "datashim": ("dlf-chart-0.3.9-renku-2.tgz",),
}
# fixed times (the renku 2.19.3 release commit) so index.yaml is byte-identical on every run and machine
CREATED = "2026-08-04T07:21:25Z"
GENERATED = "2026-08-04T07:21:25Z"
# the fields of Helm's chart metadata that `helm repo index` copies into an index entry, in its order
METADATA_FIELDS = (
    "name",
    "home",
    "sources",
    "version",
    "description",
    "keywords",
    "maintainers",
    "icon",
    "apiVersion",
    "condition",
    "tags",
    "appVersion",
    "deprecated",
    "annotations",
    "kubeVersion",
    "dependencies",
    "type",
)
DEPENDENCY_FIELDS = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")
REQUIRED = ("name", "version", "repository")


def daemons(ca: labcore.LabCA) -> list[labcore.Daemon]:
    crt, key = ca.issue("chartrepo", "charts.lab", [labcore.LOOPBACK, "localhost", "charts.lab"])
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
    ]
    base = f"https://{labcore.LOOPBACK}:{PORT}"
    return [
        labcore.Daemon(
            "chartrepo",
            argv,
            labcore.https_ok(f"{base}/{next(iter(PUBLISHERS))}/index.yaml"),
            prepare=layout,
        )
    ]


def env() -> dict[str, str]:
    return {
        "LAB_CHART_REPO_URL": f"https://{labcore.LOOPBACK}:{PORT}",
        "LAB_CHART_REPO_ROOT": str(ROOT),
        "LAB_REFERENCE_CHARTS": str(labcore.REFERENCE_CHARTS),
    }


def after_up(lab_env: dict[str, str]) -> None:
    """Bring the tree in line with shared/ (a package that changed there is copied again)."""
    layout()


# --------------------------------------------------------------------------------------------------
# the repository tree


def chart_metadata(package: Path) -> dict[str, Any]:
    """Chart.yaml of a packaged chart (`<name>/Chart.yaml`; for apiVersion v1 charts without `dependencies`
    there, those of `<name>/requirements.yaml`, as Helm's loader does)."""
    with tarfile.open(package, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        chart_yaml = [n for n in members if n.count("/") == 1 and n.endswith("/Chart.yaml")]
        if len(chart_yaml) != 1:
            raise SystemExit(f"chartrepo: {package.name} has no single top-level Chart.yaml")
        top = chart_yaml[0].split("/")[0]

        def load(name: str) -> dict[str, Any]:
            member = members.get(f"{top}/{name}")
            handle = tar.extractfile(member) if member else None
            return (yaml.safe_load(io.TextIOWrapper(handle, encoding="utf-8")) or {}) if handle else {}

        meta = load("Chart.yaml")
        if meta.get("apiVersion", "v1") == "v1" and not meta.get("dependencies"):
            meta["dependencies"] = load("requirements.yaml").get("dependencies") or []
    return meta


def index_entry(package: Path) -> dict[str, Any]:
    meta = chart_metadata(package)
    entry: dict[str, Any] = {}
    for field in METADATA_FIELDS:
        value = meta.get(field)
        if field == "dependencies" and value:
            # name, version and repository are always written (`repository: ""` for a local subchart)
            value = [
                {k: dep.get(k, "") for k in DEPENDENCY_FIELDS if k in REQUIRED or dep.get(k) not in (None, "", [])}
                for dep in value
            ]
        if value not in (None, "", [], {}):
            entry[field] = value
    entry["version"] = str(entry["version"])
    if "appVersion" in entry:
        entry["appVersion"] = str(entry["appVersion"])
    entry["created"] = CREATED
    entry["digest"] = hashlib.sha256(package.read_bytes()).hexdigest()
    entry["urls"] = [package.name]
    return entry


def _version_key(version: str) -> tuple:
    """Newest first, as Helm sorts an index (good enough for the versions here: numeric, then pre-release)."""
    core, _, pre = version.partition("-")
    nums = tuple(int(p) if p.isdigit() else 0 for p in core.split("."))
    return (nums, pre == "", pre)


def index_yaml(packages: list[Path]) -> bytes:
    entries: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        entry = index_entry(package)
        entries.setdefault(entry["name"], []).append(entry)
    for versions in entries.values():
        versions.sort(key=lambda e: _version_key(e["version"]), reverse=True)
    index = {"apiVersion": "v1", "entries": entries, "generated": GENERATED}
    return yaml.safe_dump(index, sort_keys=True, default_flow_style=False).encode()


def _same_file(a: Path, b: Path) -> bool:
    return b.exists() and a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def layout(root: Path = ROOT) -> dict[str, int]:
    """Lay out `<root>/<publisher>/{index.yaml,<package>.tgz}` from shared/; idempotent (writes only what
    differs, removes packages no publisher lists). Returns how many files were written."""
    written = 0
    for publisher, names in PUBLISHERS.items():
        target = root / publisher
        target.mkdir(parents=True, exist_ok=True)
        packages = []
        for name in names:
            src, dest = labcore.reference_package(name, "chartrepo"), target / name
            if not _same_file(src, dest):
                tmp = target / f".{name}.part"
                shutil.copyfile(src, tmp)
                tmp.chmod(0o644)
                tmp.replace(dest)
                written += 1
            packages.append(dest)
        for stale in target.glob("*.tgz"):
            if stale.name not in names:
                stale.unlink()
        index = index_yaml(packages)
        if not (target / "index.yaml").exists() or (target / "index.yaml").read_bytes() != index:
            labcore.write_public(target / "index.yaml", index)
            written += 1
    return {"files_written": written}


# --------------------------------------------------------------------------------------------------
# the server


class ChartRepoHandler(BaseHTTPRequestHandler):
    root: Path
    protocol_version = "HTTP/1.1"
    server_version = "lab-chartrepo"

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse(self) -> None:
        self._reply(405, b"only GET and HEAD\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None, send: bool = True) -> None:
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
            # a request body is never read: close the connection, or its bytes would be taken for the next request
            headers = {**(headers or {}), "Connection": "close"}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send:
            self.wfile.write(body)

    def _file(self) -> Path | None:
        """`/<publisher>/index.yaml` or `/<publisher>/<package>.tgz` (query strings ignored); else None."""
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in PUBLISHERS:
            return None
        publisher, name = parts
        if name != "index.yaml" and name not in PUBLISHERS[publisher]:
            return None
        file = self.root / publisher / name
        return file if file.is_file() else None

    def _serve(self, body: bool) -> None:
        if self.path == "/healthz":
            self._reply(200, b"ok\n", {"Content-Type": "text/plain"}, send=body)
            return
        file = self._file()
        if file is None:
            self._reply(404, b"not found\n", {"Content-Type": "text/plain"}, send=body)
            return
        data = file.read_bytes()
        kind = "application/x-yaml" if file.suffix == ".yaml" else "application/gzip"
        self._reply(200, data, {"Content-Type": kind}, send=body)


def serve(port: int, root: Path, cert: str, key: str) -> None:
    ChartRepoHandler.root = root
    server = ThreadingHTTPServer((labcore.LOOPBACK, port), ChartRepoHandler)
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
    lay = sub.add_parser("layout")
    lay.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    if args.command == "layout":
        print(layout(args.root))
    else:
        serve(args.port, args.root, args.cert, args.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
