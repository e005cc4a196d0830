"""Stand-in for the pip bootstrap script ansible-test downloads (`get-pip-<version>.py`).

ansible-test creates its sanity virtual environments without pip and then fetches a bootstrap script
from a CI file host that this kind of machine cannot reach. This script does the same job with what
Python ships: pip from the interpreter's bundled wheel (ensurepip), then `pip install` of the
requested packages from the package index. `make sanity` places it in ansible-test's cache.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}
SYSTEM_TRUST = "/etc/ssl/certs/ca-certificates.crt"


def trust_options() -> list[str]:
    """The bundled pip trusts only its own certifi copy; use the machine's trust store, as pip.conf does."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"), SYSTEM_TRUST):
        if candidate and os.path.exists(candidate):
            return ["--cert", candidate]
    return []


def main() -> None:
    ensurepip.bootstrap(upgrade=True)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "pip", "install", *trust_options(), *args])


if __name__ == "__main__":
    main()
