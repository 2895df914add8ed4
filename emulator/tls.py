"""A self-signed TLS certificate for ``serve --tls``, generated at start.

The certificate is its own CA (``basicConstraints CA:true``) so a client can trust it directly
(``requests.Session.verify = cert_file``). It names 127.0.0.1, ::1, localhost and the Salesforce
login hosts, so a client whose transport routes ``login.salesforce.com`` to the emulator can
keep checking host names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DNS_NAMES = ("localhost", "login.salesforce.com", "test.salesforce.com", "emulator.my.salesforce.com")


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path


def generate_self_signed(directory: Path, hosts: tuple[str, ...] = ()) -> TlsFiles:
    """Write ``cert.pem`` and ``key.pem`` (mode 0600) into ``directory`` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sfvault emulator")])
    now = datetime.now(UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(h) for h in (*DNS_NAMES, *hosts) if not _is_ip(h)]
    alt += [x509.IPAddress(ipaddress.ip_address(h)) for h in ("127.0.0.1", "::1", *hosts) if _is_ip(h)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert_file=cert_file, key_file=key_file)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def generate_jwt_keypair(directory: Path) -> tuple[Path, bytes]:
    """An RSA key pair for the connected app's JWT bearer flow.

    Writes the private key to ``jwt_private.pem`` (mode 0600, for clients) and returns its path
    and the public key PEM (what the org checks assertions against).
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "jwt_private.pem"
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public
