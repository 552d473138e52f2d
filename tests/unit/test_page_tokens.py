"""PAGE-1.3: page tokens are opaque, signed by the deployment's key, and bound to their listing and filters."""

from __future__ import annotations

import base64

import pytest

from sayiir_server.api.page_tokens import PageTokens, decode_list_cursor, encode_list_cursor
from sayiir_server.domain.errors import InvalidFieldError
from sayiir_server.domain.listing import ListCursor

KEY = b"k" * 32


def test_a_token_the_server_issued_reads_back_to_its_cursor() -> None:
    tokens = PageTokens(KEY)
    token = tokens.issue("ListSnapshots", b"", "order-7/ü".encode())

    assert tokens.read(token, "ListSnapshots", b"").decode() == "order-7/ü"


@pytest.mark.parametrize(
    "token",
    [
        "***",
        "ébc",
        base64.urlsafe_b64encode(b"order-1").decode(),  # what an id looks like encoded: not issued
        base64.urlsafe_b64encode(b"a\x00b").decode(),
        base64.urlsafe_b64encode(b"\x01" + b"\x00" * 16 + b"order-1").decode(),  # right shape, wrong signature
    ],
)
def test_a_token_the_server_did_not_issue_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        PageTokens(KEY).read(token, "ListSnapshots", b"")
    assert refused.value.field == "page_token"


def test_a_token_of_another_deployment_is_refused() -> None:
    token = PageTokens(b"other key" * 4).issue("ListSnapshots", b"", b"order-1")

    with pytest.raises(InvalidFieldError):
        PageTokens(KEY).read(token, "ListSnapshots", b"")


def test_a_token_used_with_other_filters_or_another_listing_is_refused() -> None:
    tokens = PageTokens(KEY)
    token = tokens.issue("ListWorkflows", b"filters-a", b"cursor")

    with pytest.raises(InvalidFieldError):
        tokens.read(token, "ListWorkflows", b"filters-b")
    with pytest.raises(InvalidFieldError):
        tokens.read(token, "ListSnapshots", b"filters-a")


def test_a_list_cursor_round_trips_through_its_encoding() -> None:
    cursor = ListCursor(-1_234_567, "order-ü")

    assert decode_list_cursor(encode_list_cursor(cursor)) == cursor
