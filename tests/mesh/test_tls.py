"""TLS and mTLS on the gRPC port, with certificates the tests make; plaintext stays the default."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_client import AsyncPersistenceClient
from sayiir_server.mesh.mesh import MeshOptions
from sayiir_server.mesh.tls import ServerTls, TlsConfigError
from tests.mesh.certificates import KeyPair, Pki
from tests.mesh.serving import at_task_snapshot, serving


def _tls_options(pki: Pki, *, mutual: bool = False) -> MeshOptions:
    return MeshOptions(
        tls_cert=pki.server_cert_file,
        tls_key=pki.server_key_file,
        tls_client_ca=pki.ca_file if mutual else None,
    )


def _credentials(pki: Pki, client: KeyPair | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.certificate_pem,
        private_key=client.key if client else None,
        certificate_chain=client.certificate if client else None,
    )


async def _health(channel: grpc.aio.Channel) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    status: int = response.status
    return status


async def test_a_client_trusting_the_ca_completes_the_tls_handshake(pki: Pki) -> None:
    async with (
        serving(_tls_options(pki)) as served,
        grpc.aio.secure_channel(served.address, _credentials(pki)) as channel,
    ):
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_the_python_client_works_over_tls(pki: Pki) -> None:
    async with (
        serving(_tls_options(pki)) as served,
        AsyncPersistenceClient(served.address, credentials=_credentials(pki)) as client,
    ):
        await client.save_snapshot(at_task_snapshot("order-tls"))
        assert (await client.load_snapshot("order-tls")).instance_id == "order-tls"


async def test_a_plaintext_client_cannot_call_a_tls_server(pki: Pki) -> None:
    async with serving(_tls_options(pki)) as served, grpc.aio.insecure_channel(served.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _health(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_not_trusting_the_server_certificate_is_refused_the_handshake(pki: Pki) -> None:
    async with serving(_tls_options(pki)) as served:
        other_ca = grpc.ssl_channel_credentials(root_certificates=pki.stranger.certificate)
        async with grpc.aio.secure_channel(served.address, other_ca) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _health(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_accepts_a_client_certificate_signed_by_the_client_ca(pki: Pki) -> None:
    async with (
        serving(_tls_options(pki, mutual=True)) as served,
        grpc.aio.secure_channel(served.address, _credentials(pki, pki.client)) as channel,
    ):
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_mtls_rejects_a_client_without_a_certificate(pki: Pki) -> None:
    async with (
        serving(_tls_options(pki, mutual=True)) as served,
        grpc.aio.secure_channel(served.address, _credentials(pki)) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _health(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_rejects_a_client_certificate_from_another_ca(pki: Pki) -> None:
    async with (
        serving(_tls_options(pki, mutual=True)) as served,
        grpc.aio.secure_channel(served.address, _credentials(pki, pki.stranger)) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _health(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("tls", "mutual", "mode"), [(False, False, "plaintext"), (True, False, "TLS"), (True, True, "mTLS")]
)
async def test_the_startup_log_line_names_the_transport_mode(
    pki: Pki, caplog: pytest.LogCaptureFixture, tls: bool, mutual: bool, mode: str
) -> None:
    caplog.set_level(logging.INFO, logger="sayiir_server.api.server")
    async with serving(_tls_options(pki, mutual=mutual) if tls else MeshOptions()) as served:
        assert served.mesh.transport_mode == mode
    (line,) = [record.getMessage() for record in caplog.records if "listening on" in record.getMessage()]
    assert line.endswith(f", {mode})")


def test_no_tls_flag_means_plaintext() -> None:
    assert ServerTls.from_files(None, None, None) is None


def test_a_certificate_without_its_key_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="--tls-cert and --tls-key go together"):
        ServerTls.from_files(pki.server_cert_file, None, None)


def test_a_client_ca_without_a_server_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="--tls-client-ca needs both"):
        ServerTls.from_files(None, None, pki.ca_file)


def test_an_unreadable_file_is_named_with_its_flag(pki: Pki, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(TlsConfigError, match=f"cannot read --tls-key file {missing}"):
        ServerTls.from_files(pki.server_cert_file, missing, None)


def test_a_file_without_pem_content_is_refused(pki: Pki, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate")
    with pytest.raises(TlsConfigError, match=r"--tls-client-ca file .* holds no PEM block"):
        ServerTls.from_files(pki.server_cert_file, pki.server_key_file, str(not_pem))
