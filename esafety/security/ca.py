"""The school's certificate authority, and certificates made from it for each name.

Most blocked sites are visited over HTTPS. The DNS filter sends their names to esafety,
which can only show the block page without a certificate warning if it presents a
certificate for that very name that the device trusts (issue 4 §7). So the school makes
its own CA once (``esafety ca create``), its devices are told to trust it (the steps are
in docs/deployment.md), and the web app's HTTPS listener makes a certificate for each
name a browser asks for (the TLS SNI name), signed by the CA, remembered in a bounded
LRU (:class:`LeafCertificates`).

The CA can sign for any name (X.509 name constraints cannot be used: the names are
whatever the lists block), so a device that trusts it trusts anything its key signs.
The key lives in ``DATA/ca/ca.key`` with mode 0600 and must be guarded like the
database: whoever holds it can impersonate any website to the school's devices.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import secrets
import shutil
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from esafety.errors import ConfigError, InvalidInput, NotFound

__all__ = [
    "CA_YEARS",
    "LEAF_DAYS",
    "LeafCertificates",
    "NoSchoolCa",
    "SchoolCa",
    "ca_paths",
    "create_ca",
    "load_ca",
]

log = logging.getLogger(__name__)

CA_YEARS = 10
#: Leaf certificates are short-lived and made again before they end (Apple's rules for
#: server certificates ask for at most 825 days; nothing needs more than a month here).
LEAF_DAYS = 30
#: Make a remembered certificate again when it has less than this left.
RENEW_BEFORE = dt.timedelta(days=2)
#: Names whose certificates are remembered (a blocked page pulls in few names).
LEAF_CAPACITY = 1024
MAX_NAME = 253


@dataclass(frozen=True)
class SchoolCa:
    """The CA's certificate and key, and where they are kept."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def name(self) -> str:
        found = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(found[0].value) if found else self.certificate.subject.rfc4514_string()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, as Windows, macOS and Chrome show it."""
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    @property
    def spki_sha256(self) -> str:
        """Base64 SHA-256 of the public key (Chrome's ``--ignore-certificate-errors-spki-list``
        and HPKP-style pins)."""
        spki = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        return base64.b64encode(digest.finalize()).decode()

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def ca_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    """The CA's folder, key file and certificate file in the data directory."""
    folder = data_dir / "ca"
    return folder, folder / "ca.key", folder / "ca.crt"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(
    data_dir: Path, name: str, *, force: bool = False, now: dt.datetime | None = None
) -> SchoolCa:
    """Make the school's CA (an ECDSA P-256 key and a 10-year certificate).

    Refuses to replace an existing one unless ``force``: every device trusts the old
    one, and would have to be told to trust the new one.
    """
    label = " ".join(name.split())
    if not label or len(label) > 64:
        raise InvalidInput(f"CA name {name!r}: give the school's name, 1 to 64 characters")
    folder, key_path, cert_path = ca_paths(data_dir)
    if (key_path.exists() or cert_path.exists()) and not force:
        existing = ""
        with contextlib.suppress(NotFound, ConfigError):
            existing = f" (fingerprint {load_ca(data_dir).fingerprint})"
        raise InvalidInput(
            f"a school CA already exists in {folder}{existing}: replacing it means every "
            "device must be told to trust the new one. Give --force to replace it."
        )
    moment = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{label} esafety CA"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, label),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(hours=1))
        .not_valid_after(moment + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return SchoolCa(certificate, key, cert_path, key_path)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a whole file or nothing: a new file beside it, then one rename."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class NoSchoolCa(NotFound):
    """No usable school CA in the data directory."""


def load_ca(data_dir: Path) -> SchoolCa:
    """The school's CA; :class:`NotFound` with what to do when there is none."""
    folder, key_path, cert_path = ca_paths(data_dir)
    if not key_path.exists() or not cert_path.exists():
        raise NoSchoolCa(
            f"there is no school CA in {folder}: make one with `esafety ca create --name "
            '"Your School"`, then trust its certificate on the school\'s devices'
        )
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"the school CA in {folder} cannot be read: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"the school CA key in {key_path} is not an ECDSA key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    if ours != certificate.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise ConfigError(f"the school CA key in {key_path} does not belong to {cert_path}")
    return SchoolCa(certificate, key, cert_path, key_path)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class LeafCertificates:
    """Certificates for names, made from the school CA when first asked for.

    One leaf key serves every name (making the key is the slow part; signing is cheap).
    Python's ``ssl`` loads certificates from files only, so each is written to a private
    folder, loaded into its own :class:`ssl.SSLContext`, and removed at once.
    """

    def __init__(
        self,
        ca: SchoolCa,
        *,
        capacity: int = LEAF_CAPACITY,
        days: int = LEAF_DAYS,
    ) -> None:
        self.ca = ca
        self.capacity = capacity
        self.days = days
        self.minted = 0
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._contexts: OrderedDict[str, tuple[ssl.SSLContext, dt.datetime]] = OrderedDict()
        self._lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix="esafety-tls-"))
        self._key_path = self._folder / "leaf.key"
        _write(
            self._key_path,
            self._key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        )

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def certificate(self, names: Iterable[str], now: dt.datetime | None = None) -> x509.Certificate:
        """A certificate for ``names`` (the first is the subject), signed by the CA."""
        listed = [n for n in dict.fromkeys(names) if n]
        if not listed:
            raise InvalidInput("a certificate needs at least one name")
        moment = now or _now()
        ends = min(moment + dt.timedelta(days=self.days), self.ca.not_after)
        subject = (
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, listed[0])])
            if len(listed[0]) <= 64
            else x509.Name([])
        )
        public = self._key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca.certificate.subject)
            .public_key(public)
            .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
            .not_valid_before(moment - dt.timedelta(hours=1))
            .not_valid_after(ends)
            .add_extension(
                x509.SubjectAlternativeName([_san(n) for n in listed]),
                critical=len(subject) == 0,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
            .sign(self.ca.key, hashes.SHA256())
        )

    def _context(self, names: list[str]) -> tuple[ssl.SSLContext, dt.datetime]:
        certificate = self.certificate(names)
        chain = certificate.public_bytes(serialization.Encoding.PEM) + self.ca.pem()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        fd, path = tempfile.mkstemp(dir=self._folder, suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(chain)
            context.load_cert_chain(path, self._key_path)
        finally:
            os.unlink(path)
        self.minted += 1
        return context, certificate.not_valid_after_utc

    def context_for(self, name: str) -> ssl.SSLContext:
        """The TLS context presenting a certificate for ``name`` (made, or remembered)."""
        with self._lock:
            found = self._contexts.get(name)
            if found is not None and found[1] - _now() > RENEW_BEFORE:
                self._contexts.move_to_end(name)
                return found[0]
            made = self._context([name])
            self._contexts[name] = made
            self._contexts.move_to_end(name)
            while len(self._contexts) > self.capacity:
                self._contexts.popitem(last=False)
            return made[0]

    def __len__(self) -> int:
        return len(self._contexts)

    def server_context(self, default_names: Iterable[str]) -> ssl.SSLContext:
        """The listener's context: a certificate for ``default_names`` (clients that send
        no name, such as those connecting to an IP address), and for every other name the
        one :meth:`context_for` makes, chosen in the TLS handshake (SNI)."""
        context, _ends = self._context(list(default_names) or ["localhost"])
        context.sni_callback = self._choose
        return context

    def _choose(
        self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if not server_name or len(server_name) > MAX_NAME:
            return  # the default certificate
        from esafety.filtering.hostnames import normalise_host

        try:
            name = normalise_host(server_name)
        except InvalidInput:
            return
        try:
            connection.context = self.context_for(name)
        except Exception as error:  # never end the listener over one name
            log.error(
                "could not make a certificate for %r: %s: %s", name, type(error).__name__, error
            )
