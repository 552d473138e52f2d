"""TaskId and DefinitionHash: 32-byte values (docs/behaviour.md ID) that go wherever bytes go."""

from __future__ import annotations

import hashlib

import pytest

from sayiir_client import DefinitionHash, TaskId
from sayiir_client.v1 import messages_pb2 as pb


def test_from_name_is_the_sha256_of_the_name() -> None:
    assert TaskId.from_name("charge-card") == hashlib.sha256(b"charge-card").digest()


def test_an_id_must_be_exactly_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TaskId(b"\x00" * 31)
    with pytest.raises(ValueError, match="32 bytes"):
        DefinitionHash(b"\x00" * 33)


def test_hex_round_trips_as_64_lowercase_digits() -> None:
    task_id = TaskId.from_name("ship")

    assert len(task_id.hex()) == 64
    assert task_id.hex() == task_id.hex().lower()
    assert TaskId.from_hex(task_id.hex()) == task_id
    assert str(task_id) == task_id.hex()


def test_from_hex_rejects_text_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TaskId.from_hex("ab" * 31)


def test_ids_compare_and_hash_like_their_bytes() -> None:
    task_id = TaskId.from_name("ship")
    raw = hashlib.sha256(b"ship").digest()

    assert task_id == raw
    assert TaskId(raw) == task_id
    assert hash(task_id) == hash(raw)
    by_id: dict[bytes, int] = {task_id: 1}
    assert by_id[raw] == 1
    assert TaskId.from_name("ship") != TaskId.from_name("pack")


def test_the_repr_names_the_type_and_shows_a_hex_prefix() -> None:
    task_id = TaskId.from_name("ship")

    assert repr(task_id) == f"TaskId('{task_id.hex()[:8]}…')"
    assert repr(DefinitionHash(task_id)).startswith("DefinitionHash('")


def test_ids_go_into_protobuf_bytes_fields() -> None:
    task_id = TaskId.from_name("ship")

    message = pb.AtTask(task_id=task_id)

    assert message.task_id == task_id
    assert TaskId(pb.AtTask.FromString(message.SerializeToString()).task_id) == task_id
