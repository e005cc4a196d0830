# Copyright: airgap.renku contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site CA for the platform stage: check each CA input, build the bundle that containers trust.

1. `validate_cas` checks each CA input (PEM parses, is a CA, may sign certificates, is valid now);
2. `build_bundle` concatenates the system roots and the custom CAs: several variables `inject` sets
   *replace* the default store, so a bundle with only the private CA would break public TLS.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from typing import Iterable

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported through missing_required_lib
    import traceback

    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

# the two files of the bundle: system roots plus the custom CAs, and the custom CAs alone
BUNDLE_KEY = "ca-bundle.crt"
CUSTOM_KEY = "custom-ca.crt"
SYSTEM_BUNDLE_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # SUSE
)


class CAError(ValueError):
    """A CA input that must not be trusted; the message names the input and the fix."""


@dataclass
class CAInfo:
    source: str
    subject: str
    sha256: str
    not_after: str
    pem: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "subject": self.subject, "sha256": self.sha256, "not_after": self.not_after}


# --------------------------------------------------------------------------------------------------
# CA validation


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)
_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def validate_cas(
    inputs: Iterable[tuple[str, str]], warn_days: int = 30, now: dt.datetime | None = None
) -> tuple[list[CAInfo], list[str]]:
    """Check each (source name, PEM text); return the accepted CAs and warnings. Raises CAError."""
    now = now or dt.datetime.now(dt.UTC)
    accepted: list[CAInfo] = []
    warnings: list[str] = []
    for source, text in inputs:
        blocks = list(_PEM_BLOCK.finditer(text or ""))
        if any("PRIVATE KEY" in b.group(1) for b in blocks):
            raise CAError(f"{source}: contains a private key; give the CA certificate only, never its key")
        certs = [b.group(0) for b in blocks if b.group(1) in ("CERTIFICATE", "TRUSTED CERTIFICATE")]
        if not certs:
            raise CAError(f"{source}: no PEM certificate found (expected '-----BEGIN CERTIFICATE-----')")
        for index, pem in enumerate(certs):
            name = source if len(certs) == 1 else f"{source} (certificate {index + 1})"
            info, warning = _check_ca(name, pem, warn_days, now)
            accepted.append(info)
            if warning:
                warnings.append(warning)
    if not accepted:
        raise CAError("no CA given: set at least one CA file or PEM")
    return accepted, warnings


def _check_ca(source: str, pem: str, warn_days: int, now: dt.datetime) -> tuple[CAInfo, str | None]:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CAError(f"{source}: the certificate does not parse ({exc})") from exc
    subject = cert.subject.rfc4514_string()
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise CAError(
            f"{source}: '{subject}' is not a CA (basicConstraints CA:TRUE missing); give the root or "
            "intermediate CA that signed it, not a server certificate"
        )
    warning = None
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise CAError(f"{source}: '{subject}' may not sign certificates (keyUsage lacks keyCertSign)")
    except x509.ExtensionNotFound:
        warning = f"{source}: '{subject}' has no keyUsage extension; accepted as a CA by basicConstraints"
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        raise CAError(f"{source}: '{subject}' is not valid before {not_before.isoformat()}")
    if now > not_after:
        raise CAError(f"{source}: '{subject}' expired on {not_after.isoformat()}; renew the CA first")
    if not_after - now < dt.timedelta(days=warn_days):
        days = (not_after - now).days
        warning = f"{source}: '{subject}' expires in {days} day(s) ({not_after.isoformat()}); plan its renewal"
    sha256 = cert.fingerprint(hashes.SHA256()).hex()
    clean = cert.public_bytes(serialization.Encoding.PEM).decode()
    return CAInfo(source, subject, sha256, not_after.isoformat(), clean), warning


# --------------------------------------------------------------------------------------------------
# bundle


def default_system_bundle() -> str | None:
    """The controller's system roots: certifi when installed, else the distribution's bundle."""
    try:
        import certifi

        return certifi.where()
    except ImportError:
        pass
    return next((p for p in SYSTEM_BUNDLE_CANDIDATES if os.path.isfile(p)), None)


def build_bundle(cas: list[CAInfo], system_pem: str) -> tuple[str, str]:
    """(full bundle, custom-only bundle); custom CAs already among the system roots are not repeated."""
    custom = "".join(_dedupe([ca.pem for ca in cas]))
    system_blocks = _certificate_blocks(system_pem)
    extra = [ca.pem for ca in cas if not _among(ca.pem, system_pem, system_blocks)]
    full = "".join(system_blocks) + "".join(_dedupe(extra))
    return full, custom


def _certificate_blocks(text: str) -> list[str]:
    """The CERTIFICATE blocks of a bundle (comments and other blocks dropped); string ops, no regex."""
    blocks = []
    for part in text.split(_END)[:-1]:
        start = part.find(_BEGIN)
        if start >= 0:
            blocks.append(part[start:] + _END + "\n")
    return blocks


def _among(pem: str, text: str, blocks: list[str]) -> bool:
    """Whether the certificate `pem` is one of `blocks` (cheap pre-check on its first base64 line)."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[1] not in text:
        return False
    wanted = _normalise(pem)
    return any(_normalise(block) == wanted for block in blocks if lines[1] in block)


def _normalise(pem: str) -> str:
    return "".join(pem.split())


def _dedupe(pems: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for pem in pems:
        key = _normalise(pem)
        if key not in seen:
            seen.add(key)
            out.append(pem if pem.endswith("\n") else pem + "\n")
    return out
