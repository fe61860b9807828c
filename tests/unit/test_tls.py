"""TLS stays verified by default, for RabbitMQ (amqps://) and for vendor calls."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from workers.app import make_broker
from workers.registry import make_http_client
from workers.settings import Settings
from workers.vendors.pbsm.config import PbsmConnection


def _self_signed(tmp_path: Path) -> Path:
    cert, key = tmp_path / "ca.pem", tmp_path / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=flowgate-test-ca", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert


def test_amqps_verifies_certificates_and_takes_a_ca_file(tmp_path: Path) -> None:
    ca = _self_signed(tmp_path)
    settings = Settings(amqp_url="amqps://u:p@rabbit.example:5671/", amqp_ca_file=ca)
    context = make_broker(settings)._ssl_context  # type: ignore[attr-defined]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(
        c["subject"] == ((("commonName", "flowgate-test-ca"),),) for c in context.get_ca_certs()
    )


def test_plain_amqp_has_no_tls_context() -> None:
    assert make_broker(Settings())._ssl_context is None  # type: ignore[attr-defined]


async def test_vendor_calls_verify_certificates_by_default(tmp_path: Path) -> None:
    for transport in ("aiohttp", "httpx"):
        client = make_http_client(PbsmConnection(), transport)
        try:
            if transport == "aiohttp":
                context = client._transport.ssl_context  # type: ignore[attr-defined]
            else:
                context = client._transport._pool._ssl_context  # type: ignore[attr-defined]
            assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        finally:
            await client.aclose()
    ca = _self_signed(tmp_path)
    client = make_http_client(PbsmConnection(verify=str(ca)), "aiohttp")
    try:
        names = [c["subject"] for c in client._transport.ssl_context.get_ca_certs()]  # type: ignore[attr-defined]
        assert ((("commonName", "flowgate-test-ca"),),) in names
    finally:
        await client.aclose()
