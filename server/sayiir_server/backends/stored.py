"""Decoding the protobuf blobs the SQL backends store: a corrupt one is SerializationError(stored=True) (DATA_LOSS)."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError

from sayiir_client.errors import SerializationError
from sayiir_client.v1 import messages_pb2 as pb

_M = TypeVar("_M", pb.WorkflowSnapshot, pb.SignalRequest)


def decode_snapshot(blob: bytes) -> pb.WorkflowSnapshot:
    return _decode(pb.WorkflowSnapshot, blob)


def decode_signal_request(blob: bytes) -> pb.SignalRequest:
    return _decode(pb.SignalRequest, blob)


def _decode(kind: type[_M], blob: bytes) -> _M:
    message = kind()
    try:
        message.ParseFromString(blob)
    except DecodeError as error:
        raise SerializationError(f"stored {kind.__name__} is corrupt: {error}", stored=True) from error
    return message
