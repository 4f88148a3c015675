"""BeatBatcher on its own: what goes into a batch, and what a failing batch does (the recorder is faked)."""

from __future__ import annotations

import asyncio
from typing import Sequence

import pytest

from hq.heartbeat_batch import BeatBatcher
from hq.heartbeat_pg import Beat, BeatIn


def beat_in(site: str, seq: int = 0) -> BeatIn:
    return BeatIn(site, f"jti-{site}", f"1.{seq}", "{}", "{}", seq)


class SlowRecorder:
    """Records each batch it is given; answers after a pause so that beats queue up meanwhile."""

    def __init__(self, unknown: set[str] = frozenset(), fail: bool = False) -> None:  # type: ignore[assignment]
        self.batches: list[list[tuple[str, int]]] = []
        self.unknown, self.fail = unknown, fail

    async def __call__(self, beats: Sequence[BeatIn], at) -> dict[str, Beat]:  # type: ignore[no-untyped-def]
        self.batches.append([(b.site_id, b.applied_seq) for b in beats])
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("database went away")
        return {b.site_id: Beat("active", None, None, []) for b in beats if b.site_id not in self.unknown}


def test_beats_arriving_meanwhile_share_a_batch_one_per_site():
    recorder = SlowRecorder(unknown={"ghost"})

    async def run() -> list[Beat | None]:
        batcher = BeatBatcher(recorder, max_batch=3, max_in_flight=1)
        first = asyncio.ensure_future(batcher.record(beat_in("a")))
        await asyncio.sleep(0)  # the first goes out alone
        rest = [batcher.record(beat_in(s, n)) for n, s in enumerate(["b", "a", "c", "ghost", "d"], start=1)]
        return [await first, *await asyncio.gather(*rest)]

    answers = asyncio.run(run())
    assert recorder.batches == [[("a", 0)], [("b", 1), ("a", 2), ("c", 3)], [("ghost", 4), ("d", 5)]]
    assert [a is None for a in answers] == [False, False, False, False, True, False]


def test_second_beat_of_a_site_waits_for_the_next_batch():
    recorder = SlowRecorder()

    async def run() -> None:
        batcher = BeatBatcher(recorder, max_in_flight=1)
        first = asyncio.ensure_future(batcher.record(beat_in("z")))
        await asyncio.sleep(0)
        await asyncio.gather(first, *(batcher.record(beat_in("a", n)) for n in range(3)), batcher.record(beat_in("b")))

    asyncio.run(run())
    assert recorder.batches == [[("z", 0)], [("a", 0), ("b", 0)], [("a", 1)], [("a", 2)]]


def test_a_failing_batch_fails_every_beat_in_it_and_the_next_batch_still_runs():
    recorder = SlowRecorder(fail=True)

    async def run() -> list[object]:
        batcher = BeatBatcher(recorder, max_in_flight=1)
        results = await asyncio.gather(*(batcher.record(beat_in(s)) for s in "abc"), return_exceptions=True)
        recorder.fail = False
        return [*results, await batcher.record(beat_in("d"))]

    results = asyncio.run(run())
    assert [type(r).__name__ for r in results[:3]] == ["ConnectionError"] * 3
    assert isinstance(results[3], Beat)


def test_a_caller_that_went_away_is_left_out():
    recorder = SlowRecorder()

    async def run() -> None:
        batcher = BeatBatcher(recorder, max_in_flight=1)
        first = asyncio.ensure_future(batcher.record(beat_in("a")))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(batcher.record(beat_in("b")))
        stays = asyncio.ensure_future(batcher.record(beat_in("c")))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, stays)
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(run())
    assert recorder.batches == [[("a", 0)], [("c", 0)]]
