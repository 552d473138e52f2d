"""Certificates and token files for the mesh tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mesh.certificates import Pki
from tests.mesh.serving import TOKEN_FILE_TEXT


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(TOKEN_FILE_TEXT)
    return path
