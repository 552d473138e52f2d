"""Transport security of the listening port: plaintext, TLS, or mTLS (client certificates required and verified).

Plaintext stays the default: on loopback, and in meshes whose sidecars already
terminate mTLS, the server itself must not encrypt a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc

TransportMode = Literal["plaintext", "TLS", "mTLS"]


class TlsConfigError(ValueError):
    """The TLS flags do not fit together, or a file cannot be read."""


@dataclass(frozen=True)
class ServerTls:
    """The PEM material of a TLS listener; with `client_ca`, clients must present a certificate it signed."""

    certificate_chain: bytes
    """The server's certificate, followed by any intermediate certificates (PEM)."""
    private_key: bytes
    """The private key of the server certificate (PEM)."""
    client_ca: bytes | None = None
    """CA certificates (PEM) that sign client certificates; set means mTLS."""

    @property
    def mode(self) -> TransportMode:
        return "mTLS" if self.client_ca is not None else "TLS"

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    @classmethod
    def from_files(cls, cert: str | None, key: str | None, client_ca: str | None) -> ServerTls | None:
        """The TLS settings the three flags name; None (plaintext) when none is given."""
        if not (cert or key or client_ca):
            return None
        if not (cert and key):
            raise TlsConfigError("--tls-cert and --tls-key go together (and --tls-client-ca needs both)")
        return cls(
            certificate_chain=_read(cert, "--tls-cert"),
            private_key=_read(key, "--tls-key"),
            client_ca=_read(client_ca, "--tls-client-ca") if client_ca else None,
        )


def transport_mode(tls: ServerTls | None) -> TransportMode:
    return "plaintext" if tls is None else tls.mode


def _read(path: str, flag: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise TlsConfigError(f"cannot read {flag} file {path}: {error.strerror or error}") from None
    if b"-----BEGIN " not in content:
        raise TlsConfigError(f"{flag} file {path} holds no PEM block")
    return content
