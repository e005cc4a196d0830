#!/usr/bin/env python
# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm post-renderer: airgap.renku.ca_inject over Helm's rendered manifests (stdin -> stdout).

Usage: helm upgrade --install ... --post-renderer airgap-ca-inject --post-renderer-args CONFIG.json
(Helm 4 plugin), or --post-renderer /path/airgap-ca-inject.py (Helm 3, which never passes hooks).
CONFIG.json is written by the helm_airgap role: collections_path, ca_pems and the ca_inject options.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: airgap-ca-inject CONFIG.json < manifests", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    sys.path.insert(0, config["collections_path"])
    from ansible_collections.airgap.renku.plugins.module_utils.common import kube_yaml, manifest_stream
    from ansible_collections.airgap.renku.plugins.module_utils.platform import ca, inject

    try:
        cas, warnings = ca.validate_cas(
            [(f"ca_pems[{i}]", pem) for i, pem in enumerate(config["ca_pems"])], config.get("warn_days", 30)
        )
    except ca.CAError as exc:
        print(f"airgap-ca-inject: CA refused: {exc}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"airgap-ca-inject: warning: {warning}", file=sys.stderr)
    # the module's own option mapping; the role writes this configuration with the module's parameter names
    options = inject.options_from({"emit_bundle": False, **config})
    system = ""
    if config.get("emit_bundle") and config.get("system_bundle"):
        with open(config["system_bundle"], encoding="utf-8") as handle:
            system = handle.read()
    try:
        text = sys.stdin.buffer.read().decode("utf-8")
        # only the documents the transform may change are read; the others go back out as Helm rendered them
        result = inject.inject_manifest(text, cas, system, options, "the rendered manifests")
    except UnicodeDecodeError as exc:
        print(f"airgap-ca-inject: the rendered manifests are not UTF-8 text ({exc.reason})", file=sys.stderr)
        return 1
    except kube_yaml.KubeYAMLError as exc:
        print(f"airgap-ca-inject: {exc}", file=sys.stderr)
        return 1
    bundle = "".join("---\n" + manifest_stream.dump(document) for document in result["bundle"])
    sys.stdout.buffer.write((bundle + result["manifest"]).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
