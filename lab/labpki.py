"""The lab's private PKI: one root CA and leaf certificates signed by it, made with `cryptography`.

Everything is created once and reused while valid, so `lab up` is idempotent and certificates that
tests or the demo already trust keep working across restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socketserver
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=7)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file of its own (concurrent writers never share one), then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file atomically with mode 0600."""
    _write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o644)


def _still_valid(cert_path: Path) -> bool:
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class LabCA:
    """The lab root CA living in `<state>/pki`."""

    def __init__(self, pki_dir: Path) -> None:
        self.dir = pki_dir
        self.cert_path = pki_dir / "ca.crt"
        self.key_path = pki_dir / "ca.key"

    def ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if _still_valid(self.cert_path) and self.key_path.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "airgap.renku lab"),
                x509.NameAttribute(NameOID.COMMON_NAME, "airgap.renku lab root CA"),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + 10 * VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(self.key_path, _key_pem(key))
        write_public(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        return cert, key  # type: ignore[return-value]

    def issue(
        self,
        name: str,
        common_name: str,
        sans: list[str] | None = None,
        organizations: list[str] | None = None,
        client: bool = False,
    ) -> tuple[Path, Path]:
        """Issue (or reuse) `<name>.crt`/`<name>.key`; server certificates unless `client`."""
        cert_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        if _still_valid(cert_path) and key_path.exists() and self._signed_by_me(cert_path):
            return cert_path, key_path
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations or []]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        write_private(key_path, _key_pem(key))
        write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def _signed_by_me(self, cert_path: Path) -> bool:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca_cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return cert.issuer == ca_cert.subject and cert.not_valid_before_utc >= ca_cert.not_valid_before_utc


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def use_tls(server: socketserver.TCPServer, cert: str | Path, key: str | Path) -> socketserver.TCPServer:
    """Make a listening socket server speak TLS with a certificate from the lab CA; returns the server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def ensure_rsa_key(path: Path) -> Path:
    """An RSA key pair for service-account token signing: `<path>` (private) and `<path>.pub`."""
    pub = path.with_suffix(".pub")
    if path.exists() and pub.exists():
        return path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_private(path, _key_pem(key))
    write_public(
        pub, key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path
