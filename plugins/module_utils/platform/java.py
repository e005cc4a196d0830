# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Java trust for the platform stage: the script building a trust store and the init container running it.

A JVM reads neither the bundle nor the variables other runtimes read: an init container built from the
container's own image copies the image's `cacerts`, imports the custom CAs into it, and the container
gets `JAVA_TOOL_OPTIONS` pointing at the result.
"""

from __future__ import annotations

import copy

from ansible_collections.airgap.renku.plugins.module_utils.common.manifests import item_name
from ansible_collections.airgap.renku.plugins.module_utils.platform.ca import CUSTOM_KEY

JAVA_SCRIPT_KEY = "build-java-truststore.sh"
JAVA_VOLUME = "airgap-ca-java"
JAVA_DIR = "/var/run/airgap-ca/java"
JAVA_INIT_PREFIX = "airgap-ca-java-"
# images whose main process is a JVM; they get the Java trust store on top of the defaults
DEFAULT_JAVA_IMAGES = (
    r"(^|/)(eclipse-temurin|openjdk|amazoncorretto|ibm-semeru-runtimes|sapmachine|java|jre|jdk)[:@]",
    r"(^|/)keycloak(x)?[:@]",
    r"(^|/)(jenkins|elasticsearch|opensearch|kafka|zookeeper|solr|tomcat|jetty|sonarqube|nexus3)[:@/]",
)

# The script the Java init container runs (and that tests run with the machine's keytool): copy the
# image's own cacerts, import each custom CA, point JAVA_TOOL_OPTIONS at the result.
JAVA_TRUSTSTORE_SCRIPT = r"""#!/bin/sh
# Build a Java trust store: the image's own cacerts plus the custom CAs (airgap.renku.ca_inject).
set -eu
out="${AIRGAP_TRUSTSTORE:-/var/run/airgap-ca/java/cacerts}"
src="${AIRGAP_CUSTOM_CA:-/etc/airgap-ca/custom-ca.crt}"
pass="${AIRGAP_TRUSTSTORE_PASSWORD:-changeit}"
base=""
for c in "${JAVA_HOME:-/nonexistent}/lib/security/cacerts" "${JAVA_HOME:-/nonexistent}/jre/lib/security/cacerts" \
         /etc/ssl/certs/java/cacerts /opt/java/openjdk/lib/security/cacerts; do
  if [ -f "$c" ]; then base="$c"; break; fi
done
if [ -z "$base" ] && command -v java >/dev/null 2>&1; then
  home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  if [ -f "$home/lib/security/cacerts" ]; then base="$home/lib/security/cacerts"; fi
fi
mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
if [ -n "$base" ]; then cp "$base" "$out.tmp"; chmod u+w "$out.tmp"; fi
work="$(dirname "$out")/.import-$$"
mkdir -p "$work"
awk -v d="$work" '/-----BEGIN CERTIFICATE-----/ {n++; f=sprintf("%s/ca-%03d.crt", d, n)}
  f {print > f}
  /-----END CERTIFICATE-----/ {close(f); f=""}' "$src"
for f in "$work"/ca-*.crt; do
  [ -f "$f" ] || { echo "no certificate in $src" >&2; exit 1; }
  keytool -importcert -noprompt -alias "airgap-$(basename "$f" .crt)" -file "$f" \
    -keystore "$out.tmp" -storepass "$pass" >/dev/null
done
count="$(ls "$work" | wc -l)"
rm -rf "$work"
mv "$out.tmp" "$out"
echo "trust store $out: ${base:-new store} + $count custom CA(s)"
"""


def truststore_paths(container_name: str) -> tuple[str, str]:
    """(directory, trust store file) of one container's Java trust store."""
    directory = f"{JAVA_DIR}/{container_name}"
    return directory, f"{directory}/cacerts"


def tool_options(existing: str | None, store: str, password: str) -> str | None:
    """JAVA_TOOL_OPTIONS with our trust store appended; None when a trust store is already chosen."""
    flags = f"-Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStorePassword={password}"
    if not existing:
        return flags
    if "-Djavax.net.ssl.trustStore=" in existing:
        return None
    return f"{existing} {flags}"


def init_container(container: dict, mount_dir: str, password: str, bundle_volume: str, bundle_env: list[dict]) -> dict:
    """The init container that builds `container`'s trust store from the bundle mounted at `mount_dir`."""
    store = truststore_paths(item_name(container))[1]
    init = {
        "name": (JAVA_INIT_PREFIX + item_name(container))[:63],
        "image": container.get("image") or "",
        "command": ["sh", f"{mount_dir}/{JAVA_SCRIPT_KEY}"],
        "env": [
            {"name": "AIRGAP_TRUSTSTORE", "value": store},
            {"name": "AIRGAP_CUSTOM_CA", "value": f"{mount_dir}/{CUSTOM_KEY}"},
            {"name": "AIRGAP_TRUSTSTORE_PASSWORD", "value": password},
            # like every other container: tools the image runs before the JVM trust the CA too
            *bundle_env,
        ],
        "volumeMounts": [
            {"name": bundle_volume, "mountPath": mount_dir, "readOnly": True},
            {"name": JAVA_VOLUME, "mountPath": JAVA_DIR, "readOnly": False},
        ],
    }
    if container.get("imagePullPolicy"):
        init["imagePullPolicy"] = container["imagePullPolicy"]
    if container.get("securityContext"):
        init["securityContext"] = copy.deepcopy(container["securityContext"])
    return init
