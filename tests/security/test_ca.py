"""The school CA (``esafety ca create|show``) and the HTTPS listener's per-name certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from esafety.errors import ConfigError, InvalidInput, NotFound
from esafety.installation import Installation
from esafety.security.ca import LeafCertificates, ca_paths, create_ca, load_ca
from esafety.web.app import create_app
from esafety.web.https import HttpsListener
from tests.filtering.blockpage_world import import_lists


def test_create_makes_a_guarded_key_and_a_ca_certificate(tmp_path: Path) -> None:
    ca = create_ca(tmp_path, "West Park Primary")
    folder, key_path, cert_path = ca_paths(tmp_path)
    assert (ca.key_path, ca.cert_path) == (key_path, cert_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    with pytest.raises(x509.ExtensionNotFound):  # it signs any blocked name
        cert.extensions.get_extension_for_class(x509.NameConstraints)
    cert.verify_directly_issued_by(cert)  # self-signed
    assert ca.name == "West Park Primary"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > dt.timedelta(days=3650)
    loaded = load_ca(tmp_path)
    assert loaded.fingerprint == ca.fingerprint and len(ca.fingerprint.split(":")) == 32


def test_an_existing_ca_is_replaced_only_with_force(tmp_path: Path) -> None:
    first = create_ca(tmp_path, "West Park Primary")
    with pytest.raises(InvalidInput, match="Give --force") as refused:
        create_ca(tmp_path, "West Park Primary")
    assert first.fingerprint in str(refused.value)
    assert load_ca(tmp_path).fingerprint == first.fingerprint
    second = create_ca(tmp_path, "West Park Primary", force=True)
    assert second.fingerprint != first.fingerprint
    assert load_ca(tmp_path).fingerprint == second.fingerprint


def test_a_missing_or_mismatched_ca_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="esafety ca create"):
        load_ca(tmp_path)
    with pytest.raises(InvalidInput, match="1 to 64"):
        create_ca(tmp_path, "  ")
    create_ca(tmp_path / "a", "A")
    create_ca(tmp_path / "b", "B")
    _, key_a, _ = ca_paths(tmp_path / "a")
    _, key_b, _ = ca_paths(tmp_path / "b")
    key_b.write_bytes(key_a.read_bytes())
    with pytest.raises(ConfigError, match="does not belong"):
        load_ca(tmp_path / "b")


def test_the_command_line_creates_shows_and_refuses_to_overwrite(cli, inst: Installation) -> None:
    made = cli("ca", "create", "--name", "West Park Primary")
    assert made.code == 0, made.err
    shown = cli("ca", "show", "--json")
    facts = json.loads(shown.out)
    assert facts["name"] == "West Park Primary" and facts["key_mode"] == "0600"
    assert facts["certificate"] == str(inst.data_dir / "ca" / "ca.crt")
    assert facts["sha256_fingerprint"] in made.out
    text = cli("ca", "show")
    assert facts["sha256_fingerprint"] in text.out and facts["certificate"] in text.out
    again = cli("ca", "create", "--name", "West Park Primary")
    assert again.code == 2 and "--force" in again.err
    assert json.loads(cli("ca", "show", "--json").out) == facts
    forced = cli("ca", "create", "--name", "West Park Primary", "--force")
    assert forced.code == 0
    replaced = json.loads(cli("ca", "show", "--json").out)
    assert replaced["sha256_fingerprint"] != facts["sha256_fingerprint"]


def test_show_without_a_ca_explains(cli, inst: Installation) -> None:
    missing = cli("ca", "show")
    assert missing.code == 2 and "esafety ca create" in missing.err


def test_leaf_certificates_are_made_per_name_and_remembered(tmp_path: Path) -> None:
    ca = create_ca(tmp_path, "West Park Primary")
    leaves = LeafCertificates(ca, capacity=3)
    try:
        leaf = leaves.certificate(["blocked.example"])
        leaf.verify_directly_issued_by(ca.certificate)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["blocked.example"]
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < dt.timedelta(days=32)
        long_name = ".".join(["a" * 60] * 4)  # over 64 characters: no common name
        long_leaf = leaves.certificate([long_name])
        assert len(long_leaf.subject) == 0
        sans = long_leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert sans.critical
        ip_leaf = leaves.certificate(["127.0.0.1"])
        ip_names = ip_leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert [str(ip) for ip in ip_names.value.get_values_for_type(x509.IPAddress)] == [
            "127.0.0.1"
        ]

        first = leaves.context_for("one.example")
        assert leaves.context_for("one.example") is first
        for name in ("two.example", "three.example", "four.example"):
            leaves.context_for(name)
        assert len(leaves) == 3  # bounded: the least recently used went
        made = leaves.minted
        assert leaves.context_for("one.example") is not first and leaves.minted == made + 1
    finally:
        leaves.close()


# -- the HTTPS listener -------------------------------------------------------------------


@pytest.fixture
def https(inst: Installation, tmp_path: Path) -> Iterator[HttpsListener]:
    create_ca(inst.data_dir, "West Park Primary")
    import_lists(inst, tmp_path / "lists")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listener = HttpsListener(inst, create_app(inst), "127.0.0.1", 0)
    try:
        asyncio.run_coroutine_threadsafe(listener.start(), loop).result(20)
        yield listener
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _fetch(
    port: int, context: ssl.SSLContext, name: str | None, host: str, path: str = "/lessons"
) -> tuple[dict[str, Any], bytes]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        certificate: dict[str, Any] = dict(tls.getpeercert() or {})
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return certificate, answer


def test_a_blocked_name_over_https_gets_a_certificate_the_ca_vouches_for(
    https: HttpsListener, inst: Installation
) -> None:
    trusting = ssl.create_default_context(cafile=str(ca_paths(inst.data_dir)[2]))
    certificate, answer = _fetch(https.port, trusting, "blocked.example", "blocked.example")
    assert ("DNS", "blocked.example") in certificate["subjectAltName"]
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b"This website is blocked at school" in answer
    assert b"strict-transport-security" not in answer.lower()

    # esafety's own name over HTTPS is esafety (the sign-in page), with its own certificate.
    certificate, answer = _fetch(https.port, trusting, "localhost", "localhost", "/")
    assert ("DNS", "localhost") in certificate["subjectAltName"]
    assert answer.startswith(b"HTTP/1.1 303 ") and b"location: /sign-in" in answer.lower()

    # By address there is no SNI: the default certificate names the listening address.
    certificate, answer = _fetch(https.port, trusting, "127.0.0.1", "127.0.0.1", "/")
    assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]
    assert https.leaves is not None and https.leaves.minted >= 3


def test_a_device_that_does_not_trust_the_school_ca_is_warned(https: HttpsListener) -> None:
    stranger = ssl.create_default_context()  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        _fetch(https.port, stranger, "blocked.example", "blocked.example")


def test_https_needs_the_ca_and_a_free_port(inst: Installation) -> None:
    app = create_app(inst)
    missing = HttpsListener(inst, app, "127.0.0.1", 0)
    with pytest.raises(ConfigError, match="esafety ca create"):
        asyncio.run(missing.start())
    create_ca(inst.data_dir, "West Park Primary")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = HttpsListener(inst, app, "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(ConfigError, match="HTTPS cannot listen"):
            asyncio.run(busy.start())


def test_serve_with_https_but_no_ca_says_what_to_do(cli, inst: Installation) -> None:
    result = cli("serve", "--port", "1", "--no-dns", "--https-port", "0")
    assert result.code == 2
    assert "HTTPS needs the school CA" in result.err and "esafety ca create" in result.err
