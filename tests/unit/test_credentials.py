"""Backend URLs as logs show them: every password masked wherever it sits, nothing else changed."""

from __future__ import annotations

import pytest

from sayiir_server.backends import BackendUrlError
from sayiir_server.backends.credentials import redacted_url
from sayiir_server.backends.postgres.options import parse_postgres_url

SECRET = "hunter2-secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{SECRET}@db:5432/app", "postgresql://u:***@db:5432/app"),
        (f"postgresql://u@db:5432/app?password={SECRET}", "postgresql://u@db:5432/app?password=***"),
        (
            f"postgresql://u@db/app?sslpassword={SECRET}&sslkey=/k.pem",
            "postgresql://u@db/app?sslpassword=***&sslkey=/k.pem",
        ),
        (f"postgresql://u@db/app?PASSWORD={SECRET}", "postgresql://u@db/app?PASSWORD=***"),
        (f"postgresql://u@db/app?pass%77ord={SECRET}", "postgresql://u@db/app?pass%77ord=***"),
        (f"postgresql://u:a/{SECRET}@db/app", "postgresql://u:***@db/app"),
        (f"postgresql://u:a?{SECRET}@db/app?password={SECRET}", "postgresql://u:***@db/app?password=***"),
        (f"postgresql://u:{SECRET}@db/app?password={SECRET}", "postgresql://u:***@db/app?password=***"),
        (f"host=db user=u password={SECRET}", "host=db user=u password=***"),
        (f"host=db password='{SECRET} x' user=u", "host=db password=*** user=u"),
    ],
)
def test_every_password_in_a_backend_url_is_masked(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "sqlite:////var/lib/sayiir.db",
        "postgresql://u@db:5432/app?passfile=/etc/pgpass&sslkey=/k.pem&sslmode=require",
        "postgresql://db/app?user=a@b",
    ],
)
def test_a_url_without_a_password_is_shown_unchanged(url: str) -> None:
    assert redacted_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}/x@db:5432/app",  # the "/" of the password ends urllib's host part
        f"postgresql://u:{SECRET}@db:99999/app",
        f"postgres+x://u:{SECRET}@db/app?password={SECRET}",
    ],
)
def test_a_malformed_postgres_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(BackendUrlError) as refused:
        parse_postgres_url(url)
    assert SECRET not in str(refused.value)
