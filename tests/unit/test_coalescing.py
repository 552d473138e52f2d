"""The coalescer behind batched claims and completions: who shares a batch, and who is answered what."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sayiir_client.coalescing import Coalescer


class Recorder:
    """A batch runner that records each batch and, while `gate` is closed, holds it in flight."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.failing = failing
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.failing & set(items):
            raise ValueError(f"refused {sorted(self.failing & set(items))}")
        return [item.upper() for item in items]


def coalescer(
    recorder: Recorder, *, max_batch: int = 8, max_in_flight: int = 1, isolate: tuple[type[Exception], ...] = ()
) -> Coalescer[str, str]:
    return Coalescer(
        recorder.run,
        key=lambda item: item.split(":")[0],
        max_batch=max_batch,
        max_in_flight=max_in_flight,
        isolate=isolate,
    )


async def one_then_a_batch(
    recorder: Recorder, batches: Coalescer[str, str], alone: str, together: list[str]
) -> tuple[asyncio.Task[str], list[asyncio.Task[str]]]:
    """Submit `alone` (its batch held in flight), then `together` (queued behind it); release them."""
    recorder.gate.clear()
    first = asyncio.ensure_future(batches.submit(alone))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batches.submit(item)) for item in together]
    await asyncio.sleep(0)
    recorder.gate.set()
    return first, rest


async def test_a_lone_call_runs_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()

    assert await coalescer(recorder).submit("a") == "A"
    assert recorder.batches == [["a"]]


async def test_calls_made_while_a_batch_is_in_flight_share_the_next_batch() -> None:
    recorder = Recorder()
    batches = coalescer(recorder)
    recorder.gate.clear()
    first = asyncio.ensure_future(batches.submit("a"))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batches.submit(item)) for item in ("b", "c", "d")]
    await asyncio.sleep(0)
    recorder.gate.set()

    assert await asyncio.gather(first, *rest) == ["A", "B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


async def test_a_batch_holds_at_most_max_batch_items() -> None:
    recorder = Recorder()
    batches = coalescer(recorder, max_batch=2)
    recorder.gate.clear()
    calls = [asyncio.ensure_future(batches.submit(item)) for item in ("a", "b", "c", "d", "e")]
    await asyncio.sleep(0)
    recorder.gate.set()

    assert await asyncio.gather(*calls) == ["A", "B", "C", "D", "E"]
    assert recorder.batches == [["a"], ["b", "c"], ["d", "e"]]


async def test_items_of_one_key_never_share_a_batch() -> None:
    recorder = Recorder()
    batches = coalescer(recorder)
    recorder.gate.clear()
    calls = [asyncio.ensure_future(batches.submit(item)) for item in ("x:1", "y:1", "x:2", "x:3", "z:1")]
    await asyncio.sleep(0)
    recorder.gate.set()

    assert await asyncio.gather(*calls) == ["X:1", "Y:1", "X:2", "X:3", "Z:1"]
    assert recorder.batches == [["x:1"], ["y:1", "x:2", "z:1"], ["x:3"]]


async def test_no_more_than_max_in_flight_batches_run_at_once() -> None:
    recorder = Recorder()
    batches = coalescer(recorder, max_batch=1, max_in_flight=2)
    recorder.gate.clear()
    calls = [asyncio.ensure_future(batches.submit(item)) for item in ("a", "b", "c")]
    for _ in range(5):  # the batches' own tasks start
        await asyncio.sleep(0)

    assert recorder.batches == [["a"], ["b"]]
    recorder.gate.set()
    assert await asyncio.gather(*calls) == ["A", "B", "C"]


async def test_an_isolated_error_fails_its_own_caller_only() -> None:
    recorder = Recorder(failing=frozenset({"b"}))
    batches = coalescer(recorder, isolate=(ValueError,))
    first, rest = await one_then_a_batch(recorder, batches, "a", ["b", "c"])

    assert await first == "A"
    with pytest.raises(ValueError, match="refused"):
        await rest[0]
    assert await rest[1] == "C"
    assert recorder.batches == [["a"], ["b", "c"], ["b"], ["c"]]


async def test_a_caller_that_gave_up_while_queued_is_never_run() -> None:
    recorder = Recorder()
    batches = coalescer(recorder)
    recorder.gate.clear()
    first = asyncio.ensure_future(batches.submit("a"))
    await asyncio.sleep(0)
    abandoned = asyncio.ensure_future(batches.submit("b"))
    kept = asyncio.ensure_future(batches.submit("c"))
    await asyncio.sleep(0)
    abandoned.cancel()
    recorder.gate.set()

    assert list(await asyncio.gather(first, kept)) == ["A", "C"]
    assert recorder.batches == [["a"], ["c"]]


async def test_close_waits_for_the_batches_in_flight() -> None:
    recorder = Recorder()
    batches = coalescer(recorder)
    recorder.gate.clear()
    call = asyncio.ensure_future(batches.submit("a"))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(batches.close())
    await asyncio.sleep(0.01)

    assert not closing.done()
    recorder.gate.set()
    await closing
    assert await call == "A"


async def test_a_batch_stays_within_max_size_and_a_larger_item_goes_alone() -> None:
    recorder = Recorder()
    batches: Coalescer[str, str] = Coalescer(
        recorder.run, key=lambda item: item, max_batch=8, max_in_flight=1, size=len, max_size=4
    )
    recorder.gate.clear()
    calls = [asyncio.ensure_future(batches.submit(item)) for item in ("a", "bb", "cc", "ddddddd", "e")]
    await asyncio.sleep(0)
    recorder.gate.set()

    assert await asyncio.gather(*calls) == ["A", "BB", "CC", "DDDDDDD", "E"]
    assert recorder.batches == [["a"], ["bb", "cc"], ["ddddddd"], ["e"]]


async def test_any_other_error_fails_every_caller_of_the_batch() -> None:
    recorder = Recorder(failing=frozenset({"b"}))
    batches = coalescer(recorder)
    first, rest = await one_then_a_batch(recorder, batches, "a", ["b", "c"])

    assert await first == "A"
    for call in rest:
        with pytest.raises(ValueError, match="refused"):
            await call
    assert recorder.batches == [["a"], ["b", "c"]]


async def test_a_batch_with_a_result_missing_fails_its_callers_instead_of_leaving_them_waiting() -> None:
    async def short(items: Sequence[str]) -> list[str]:
        return [item.upper() for item in items][:-1]

    batches: Coalescer[str, str] = Coalescer(short, key=lambda item: item, max_batch=8, max_in_flight=1)

    with pytest.raises(RuntimeError, match="answered 0 results"):
        await asyncio.wait_for(batches.submit("a"), 5)
