"""The PostgreSQL backend URL: pool and timeout options in the query string, everything else for the driver."""

from __future__ import annotations

import pytest

from sayiir_server.backends import BackendUrlError
from sayiir_server.backends.postgres.options import PostgresOptions, parse_postgres_url
from sayiir_server.backends.postgres.pools import PoolSizes


def test_a_plain_url_gets_the_default_options() -> None:
    parsed = parse_postgres_url("postgresql://sayiir@db.internal:5432/sayiir")

    assert parsed.options == PostgresOptions()
    assert parsed.dsn == "postgresql://sayiir@db.internal:5432/sayiir"


def test_pool_and_timeout_options_are_read_from_the_query_string() -> None:
    parsed = parse_postgres_url(
        "postgresql://sayiir@db:5432/sayiir?pool_min=2&pool_max=20&connect_timeout=1.5&command_timeout=3"
        "&acquire_timeout=4&idle_timeout=60&schema=tenant_a"
    )

    assert parsed.options == PostgresOptions(
        pool_min=2,
        pool_max=20,
        connect_timeout=1.5,
        command_timeout=3.0,
        acquire_timeout=4.0,
        idle_timeout=60.0,
        schema="tenant_a",
    )


def test_other_query_parameters_are_left_for_the_driver() -> None:
    parsed = parse_postgres_url("postgresql://sayiir@db/sayiir?pool_max=5&sslmode=require")

    assert parsed.dsn == "postgresql://sayiir@db/sayiir?sslmode=require"


def test_the_description_has_no_password_and_no_driver_options() -> None:
    parsed = parse_postgres_url("postgres://sayiir:s3cret@db:6432/sayiir?sslmode=require&pool_max=5&schema=tenant_a")

    assert parsed.description == "postgresql://sayiir@db:6432/sayiir?schema=tenant_a"
    assert "s3cret" not in parsed.description


@pytest.mark.parametrize(
    "query",
    [
        "pool_max=many",
        "pool_max=0",
        "pool_min=5&pool_max=2",
        "connect_timeout=0",
        "command_timeout=-1",
        "schema=Tenant",
        "schema=1st",
        "schema=a;drop",
        "schema=" + "s" * 41,
    ],
)
def test_a_malformed_option_is_refused(query: str) -> None:
    with pytest.raises(BackendUrlError):
        parse_postgres_url(f"postgresql://sayiir@db/sayiir?{query}")


@pytest.mark.parametrize(
    ("pool_min", "pool_max", "shared"),
    [(1, 10, (1, 5, 0, 5)), (4, 4, (2, 2, 2, 2)), (0, 3, (0, 2, 0, 1)), (1, 1, (1, 1, 0, 1))],
)
def test_the_two_pools_share_pool_min_and_pool_max_with_at_least_one_connection_each(
    pool_min: int, pool_max: int, shared: tuple[int, int, int, int]
) -> None:
    sizes = PoolSizes.of(PostgresOptions(pool_min=pool_min, pool_max=pool_max))

    assert (sizes.searching_min, sizes.searching_max, sizes.keyed_min, sizes.keyed_max) == shared
