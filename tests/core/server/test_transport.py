"""Listening on a unix socket, and TLS with a certificate made here (and renewed: --enable-ssl-refresh)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import time

import httpx
import openai

HI = [{"role": "user", "content": "hi"}]


def test_unix_domain_socket(start_server, tmp_path):
    path = tmp_path / "fw.sock"
    live = start_server(uds=str(path))
    assert live.urls == [f"http+unix://{path}"]
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://fw") as http:
        assert http.get("/health").status_code == 200
        client = openai.OpenAI(base_url="http://fw/v1", api_key="x", http_client=http, max_retries=0)
        result = client.chat.completions.create(model="fake-model", messages=HI, max_tokens=2)
    assert len(result.choices[0].message.content) == 2


def self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def test_tls_with_a_self_signed_certificate(start_server, tmp_path):
    import ssl

    key, cert = self_signed(tmp_path)
    live = start_server(ssl_keyfile=key, ssl_certfile=cert)
    assert live.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=cert)
    with httpx.Client(base_url=live.url, verify=context) as http:
        assert http.get("/health").status_code == 200
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", http_client=http, max_retries=0)
        assert client.models.list().data[0].id == "fake-model"
    with httpx.Client(base_url=live.url) as untrusting:
        try:
            untrusting.get("/health")
        except httpx.ConnectError as exc:
            assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
        else:
            raise AssertionError("a client without the certificate must not connect")


def test_enable_ssl_refresh_serves_a_renewed_certificate(start_server, tmp_path, monkeypatch):
    import ssl

    from fw.server import ssl_refresh

    monkeypatch.setattr(ssl_refresh, "POLL_SECONDS", 0.1)
    key, cert = self_signed(tmp_path)
    live = start_server(ssl_keyfile=key, ssl_certfile=cert, enable_ssl_refresh=True)
    port = int(live.url.rsplit(":", 1)[1])

    def served_certificate() -> bytes:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port)) as sock, context.wrap_socket(sock) as tls:
            return tls.getpeercert(binary_form=True)

    first = served_certificate()
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_key, new_cert = self_signed(renewed)
    time.sleep(0.05)  # a later modification time than the first files
    os.replace(new_key, key)
    os.replace(new_cert, cert)
    deadline = time.monotonic() + 10
    while served_certificate() == first:
        assert time.monotonic() < deadline, "the renewed certificate was never served"
        time.sleep(0.1)
    with httpx.Client(base_url=live.url, verify=ssl.create_default_context(cafile=cert)) as http:
        assert http.get("/health").status_code == 200
