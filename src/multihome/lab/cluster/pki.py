"""The lab cluster's certificates: one CA, the serving and client certificates it signs.

Made once per lab with the `cryptography` package (PEM files, keys 0600). The API server,
the kubelet and the webhook serve with certificates of this CA; the admin, the kubelet,
the controller manager and the scheduler authenticate with client certificates; the
service-account token key pair signs the tokens multihome's own processes run with.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from multihome.paths import write_file_atomic

VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class CertSpec:
    """One certificate: file stem, subject and what it may be used for."""

    stem: str
    common_name: str
    organization: str | None = None
    server: bool = False
    client: bool = False
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class Authority:
    """A CA kept as ca.crt/ca.key in one directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        crt, key = folder / "ca.crt", folder / "ca.key"
        if crt.exists() and key.exists():
            self.cert = x509.load_pem_x509_certificate(crt.read_bytes())
            loaded = serialization.load_pem_private_key(key.read_bytes(), None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            self.key = loaded
            return
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name("multihome-lab-ca", None)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        write_file_atomic(key, _key_pem(self.key), 0o600)
        crt.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, spec: CertSpec) -> tuple[Path, Path]:
        """`<stem>.crt` and `<stem>.key`, made once and reused while they exist."""
        crt, key_path = self.folder / f"{spec.stem}.crt", self.folder / f"{spec.stem}.key"
        if crt.exists() and key_path.exists():
            return crt, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if spec.server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if spec.client else [])
        builder = (
            x509.CertificateBuilder().subject_name(_name(spec.common_name, spec.organization))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        alt: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns]
        alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ips]
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        write_file_atomic(key_path, _key_pem(key), 0o600)
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return crt, key_path


def service_account_keys(folder: Path) -> tuple[Path, Path]:
    """The key pair that signs and verifies service-account tokens."""
    priv, pub = folder / "sa.key", folder / "sa.pub"
    if priv.exists() and pub.exists():
        return priv, pub
    key = ec.generate_private_key(ec.SECP256R1())
    write_file_atomic(priv, _key_pem(key), 0o600)
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub
