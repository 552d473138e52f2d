"""The two connection pools of a replica, one per planning policy, sharing the `pool_min`/`pool_max` bounds.

asyncpg prepares every statement once per connection, and PostgreSQL switches a prepared statement to a
generic plan after five executions when that looks no worse. For a search (dispatch pages, due work,
listings) that is a trap: a plan chosen while the table was small stays ~100× slower once it has grown
(find_available_tasks: 265–346 ms at 100,000 InProgress instances instead of 2.7 ms), so the searching pool
plans every execution for its parameters. A statement by key (a save, a claim, a completion: every
single-statement write) has one good plan at any size, and planning it anew cost more than running it
(SAVE_SNAPSHOT_AND_RELEASE: 0.15 ms planning, 0.08 ms execution), so the keyed pool lets PostgreSQL cache it.
A per-statement setting would take a SET LOCAL round trip per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from sayiir_server.backends.postgres.options import PostgresOptions

Connection = Any
"""An asyncpg connection (asyncpg ships no type information)."""

PLAN_CACHE_MODE = "force_custom_plan"
"""plan_cache_mode of the searching pool's connections: plan each statement for its parameters and table."""

KEYED_PLAN_CACHE_MODE = "auto"
"""plan_cache_mode of the keyed pool's connections: PostgreSQL's default, generic plans allowed."""


@dataclass(frozen=True)
class PoolSizes:
    """How one replica's `pool_min`/`pool_max` are shared between its two pools (at least one each)."""

    searching_min: int
    searching_max: int
    keyed_min: int
    keyed_max: int

    @classmethod
    def of(cls, options: PostgresOptions) -> PoolSizes:
        keyed_max = max(options.pool_max // 2, 1)
        searching_max = max(options.pool_max - keyed_max, 1)
        searching_min = min(options.pool_min, searching_max)
        keyed_min = min(options.pool_min - searching_min, keyed_max)
        return cls(searching_min, searching_max, keyed_min, keyed_max)


async def _keep_session(connection: Connection) -> None:
    """The pools' reset hook: a released connection carries no session state of ours (settings come at connect,
    LISTEN has its own connection, migrations release their advisory lock), so asyncpg's reset query, one more
    round trip per call, is skipped; asyncpg still rolls back a transaction left open."""


class Pools:
    """The searching pool (every composite and read) and the keyed pool (single-statement writes by key)."""

    def __init__(self, searching: Any, keyed: Any) -> None:
        """Use `Pools.open`."""
        self.searching = searching
        self.keyed = keyed

    @classmethod
    async def open(cls, dsn: str, options: PostgresOptions, init: Callable[[Connection], Awaitable[None]]) -> Pools:
        sizes = PoolSizes.of(options)
        searching = await _pool(dsn, options, init, PLAN_CACHE_MODE, sizes.searching_min, sizes.searching_max)
        try:
            keyed = await _pool(dsn, options, init, KEYED_PLAN_CACHE_MODE, sizes.keyed_min, sizes.keyed_max)
        except BaseException:
            searching.terminate()
            raise
        return cls(searching, keyed)

    async def close(self, timeout: float, expected: tuple[type[Exception], ...]) -> None:
        """Close both, waiting up to `timeout` for calls in flight; terminate what fails or does not close in time."""
        caught: tuple[type[Exception], ...] = (TimeoutError, *expected)
        for pool in (self.searching, self.keyed):
            try:
                await asyncio.wait_for(pool.close(), timeout)
            except caught:
                pool.terminate()

    def stats(self) -> Mapping[str, float]:
        """Both pools' use, summed (metrics.POOL_STATS_HOOK): read from any thread, no I/O.

        size counts open connections, idle those waiting for a call, in_use those serving one; the LISTEN
        connection is not pooled and not counted.
        """
        pools = (self.searching, self.keyed)
        size = sum(pool.get_size() for pool in pools)
        idle = sum(pool.get_idle_size() for pool in pools)
        return {
            "size": size,
            "idle": idle,
            # The counts are read one after the other while the loop's thread may move a connection.
            "in_use": max(size - idle, 0),
            "min_size": sum(pool.get_min_size() for pool in pools),
            "max_size": sum(pool.get_max_size() for pool in pools),
        }


async def _pool(
    dsn: str,
    options: PostgresOptions,
    init: Callable[[Connection], Awaitable[None]],
    plan_cache_mode: str,
    min_size: int,
    max_size: int,
) -> Any:
    settings = {"plan_cache_mode": plan_cache_mode}
    if options.schema is not None:
        settings["search_path"] = options.schema
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_inactive_connection_lifetime=options.idle_timeout,
        timeout=options.connect_timeout,
        command_timeout=options.command_timeout,
        server_settings=settings,
        init=init,
        reset=_keep_session,
    )
