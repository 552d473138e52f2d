"""Bytes from the command line: a text, a file, or standard input."""

from __future__ import annotations

import sys
from pathlib import Path

from sayiir_client.ctl.exit_codes import UsageError

STDIN = "-"


def read_payload(text: str | None, path: str | None, flag: str) -> bytes:
    """`text` as UTF-8, else the file at `path` ("-": standard input), else nothing."""
    if text is not None:
        return text.encode()
    if path is None:
        return b""
    if path == STDIN:
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"{flag}: cannot read {path}: {error.strerror}") from None
