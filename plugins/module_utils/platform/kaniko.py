# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images built with kaniko, trusting the site CA.

`kaniko_image_build` rewrites a Renku project template's `.gitlab-ci.yml` so its image build uses kaniko.
Renku templates build session images with Docker-in-Docker, which needs privileged runners and
trusts only public CAs. The `image_build` job is replaced by the kaniko executor, with the site CA
(a GitLab file-type CI variable) appended to `/kaniko/ssl/certs/additional-ca-cert-bundle.crt`.

The edit is textual so everything else in the file stays byte-for-byte as it was: other jobs,
comments, anchors, the job's own keys other than `image`, `services`, `before_script` and `script`,
and the shell lines of the original script that are not docker commands.

`ca_image_build` is the last resort for images where no variable works (the `ca_inject` module's
`image_builds`): a Dockerfile baking the CA into the image, and the kaniko Job that builds it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ansible_collections.airgap.renku.plugins.module_utils.platform.ca import CUSTOM_KEY

MARKER = "# image built with kaniko, trusting the site CA (airgap.renku)"
KANIKO_BUNDLE = "/kaniko/ssl/certs/additional-ca-cert-bundle.crt"
REPLACED_KEYS = ("image", "services", "before_script", "script")
DEFAULT_DESTINATION = "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"


class KanikoEditError(ValueError):
    """The file has no job to rewrite, or its shape is not understood."""


def _is_top_level(line: str) -> bool:
    return bool(line.strip()) and not line[0].isspace() and not line.startswith("#")


def _job_span(lines: list[str], job: str) -> tuple[int, int]:
    """Indices of the job's header line and of the first line after its body."""
    header = re.compile(rf"^{re.escape(job)}\s*:\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\r\n"))), None)
    if start is None:
        raise KanikoEditError(f"no top-level job '{job}' in the file")
    end = next((i for i in range(start + 1, len(lines)) if _is_top_level(lines[i])), len(lines))
    while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1  # blank lines and column-0 comments belong to what follows
    return start, end


def _entries(body: list[str]) -> tuple[int, list[tuple[str | None, list[str]]]]:
    """Split a job body into (key, lines) entries at the job's key indentation."""
    indent = next((len(line) - len(line.lstrip(" ")) for line in body if line.strip()), 2)
    key_line = re.compile(rf"^ {{{indent}}}(<<|[A-Za-z_][\w.-]*|\"[^\"]*\"|'[^']*')\s*:")
    entries: list[tuple[str | None, list[str]]] = []
    for line in body:
        match = key_line.match(line)
        if match:
            entries.append((match.group(1), [line]))
        elif entries:
            entries[-1][1].append(line)
        else:
            entries.append((None, [line]))
    return indent, entries


def _script_commands(entry: list[str]) -> list[str]:
    """Shell commands of a `script:` entry, block scalar or list of one-line items."""
    first = entry[0].split(":", 1)[1].strip()
    commands: list[str] = []
    if first.startswith(("|", ">")):
        body = [line for line in entry[1:] if line.strip()]
        if body:
            depth = min(len(line) - len(line.lstrip(" ")) for line in body)
            commands = [line.rstrip("\r\n")[depth:] for line in body]
    elif first.startswith("["):
        raise KanikoEditError("a flow-style script list is not supported; write it as a block list")
    elif first:
        commands = [first.strip("'\"")]
    else:
        for line in entry[1:]:
            stripped = line.strip()
            if stripped.startswith("- "):
                commands.append(stripped[2:].strip())
    return commands


def _destination(commands: list[str]) -> str:
    for command in commands:
        match = re.match(r"docker\s+push\s+(\S+)", command.strip())
        if match:
            return match.group(1)
    return DEFAULT_DESTINATION


def kaniko_image_build(
    text: str, kaniko_image: str, ca_variable: str = "AIRGAP_CA_CERT", job: str = "image_build"
) -> str:
    """The file with `job` rewritten to build with kaniko; unchanged when already rewritten."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ca_variable):
        raise KanikoEditError(f"ca_variable '{ca_variable}' is not a CI variable name")
    lines = text.splitlines(keepends=True)
    start, end = _job_span(lines, job)
    body = lines[start + 1 : end]
    if any(line.strip() == MARKER for line in body):
        return text
    newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
    indent, entries = _entries(body)
    old_script = next((e for k, e in entries if k == "script"), [])
    kept_shell = [
        c for c in (_script_commands(old_script) if old_script else []) if not c.lstrip().startswith("docker ")
    ]
    destination = _destination(_script_commands(old_script) if old_script else [])
    new = _kaniko_entries(indent, newline, kaniko_image, ca_variable, kept_shell, destination)
    rebuilt: list[str] = []
    inserted = False
    for key, entry in entries:
        if key in REPLACED_KEYS:
            if not inserted:
                rebuilt.extend(new)
                inserted = True
            continue
        rebuilt.extend(entry)
    if not inserted:
        rebuilt.extend(new)
    if rebuilt and not rebuilt[-1].endswith(("\n", "\r")):
        rebuilt[-1] += newline
    return "".join(lines[: start + 1] + rebuilt + lines[end:])


def _kaniko_entries(
    indent: int, newline: str, kaniko_image: str, ca_variable: str, kept_shell: list[str], destination: str
) -> list[str]:
    pad, inner = " " * indent, " " * (indent * 2)
    auth = (
        'echo "{\\"auths\\":{\\"$CI_REGISTRY\\":{\\"auth\\":\\"'
        "$(printf '%s:%s' \"$CI_REGISTRY_USER\" \"$CI_REGISTRY_PASSWORD\" | base64 | tr -d '\\n')"
        '\\"}}}" > /kaniko/.docker/config.json'
    )
    script = [
        "mkdir -p /kaniko/.docker",
        auth,
        f'cat "${ca_variable}" >> {KANIKO_BUNDLE}',
        *kept_shell,
        '/kaniko/executor --context "$CI_PROJECT_DIR" --dockerfile "$CI_PROJECT_DIR/Dockerfile"'
        f' --destination "{destination}"',
    ]
    out = [
        f"{pad}{MARKER}",
        f"{pad}image:",
        f"{inner}name: {kaniko_image}",
        f'{inner}entrypoint: [""]',
        f"{pad}script: |",
        *(f"{inner}{command}" for command in script),
    ]
    return [line + newline for line in out]


# --------------------------------------------------------------------------------------------------
# last resort for images where no variable works: bake the CA in


def ca_image_build(
    image: str,
    target: str,
    custom_pem: str,
    kaniko_image: str,
    namespace: str,
    registry_secret: str,
    bundle_name: str,
    user: str | None = None,
) -> dict[str, Any]:
    """Dockerfile adding the CA with update-ca-certificates, and the kaniko Job that builds it."""
    digest = hashlib.sha256((image + target + custom_pem).encode()).hexdigest()[:10]
    name = re.sub(r"[^a-z0-9-]+", "-", f"ca-image-{target.rsplit('/', 1)[-1]}".lower()).strip("-")[:52]
    name = f"{name}-{digest[:6]}"
    lines = [
        f"FROM {image}",
        "USER root",
        f"COPY {CUSTOM_KEY} /usr/local/share/ca-certificates/airgap-custom-ca.crt",
        "RUN update-ca-certificates",
    ]
    if user:
        lines.append(f"USER {user}")
    dockerfile = "\n".join(lines) + "\n"
    context = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"Dockerfile": dockerfile, CUSTOM_KEY: custom_pem},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "kaniko",
                            "image": kaniko_image,
                            "args": [
                                "--context=dir:///workspace",
                                "--dockerfile=/workspace/Dockerfile",
                                f"--destination={target}",
                            ],
                            "volumeMounts": [
                                {"name": "context", "mountPath": "/workspace"},
                                {"name": "docker-config", "mountPath": "/kaniko/.docker"},
                                {
                                    "name": "ca",
                                    "mountPath": "/kaniko/ssl/certs/additional-ca-cert-bundle.crt",
                                    "subPath": CUSTOM_KEY,
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "context", "configMap": {"name": name}},
                        {
                            "name": "docker-config",
                            "secret": {
                                "secretName": registry_secret,
                                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                            },
                        },
                        {"name": "ca", "configMap": {"name": bundle_name}},
                    ],
                }
            },
        },
    }
    return {"image": image, "target": target, "dockerfile": dockerfile, "objects": [context, job]}
