"""The pacer: evenly spaced turns, one 429 pause for everyone, a proportionate slow-down.

On a fake clock: these tests say what happens, never how long the machine took.
"""

from __future__ import annotations

import pytest

from voipnumber_async import ConfigurationError, LocalPacer, Pacer, RateLimitError
from voipnumber_async._rate import ChainedPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


async def take(pacer: Pacer, max_wait: float | None = None) -> None:
    wait = pacer.acquire(max_wait=max_wait)
    if wait is not None:
        await wait


def local(rate: float | None, fake: FakeTime) -> LocalPacer:
    return LocalPacer(rate, clock=fake.clock, sleep=fake.sleep)


async def test_turns_are_evenly_spaced_at_the_rate() -> None:
    fake = FakeTime()
    pacer = local(10.0, fake)
    starts = []
    for _ in range(5):
        await take(pacer)
        starts.append(round(fake.now, 6))

    assert starts == [0.0, 0.1, 0.2, 0.3, 0.4]


async def test_without_a_rate_a_turn_is_now_and_costs_no_coroutine() -> None:
    pacer = local(None, FakeTime())

    assert pacer.acquire() is None


async def test_a_429_pauses_every_turn_until_its_retry_after() -> None:
    fake = FakeTime()
    pacer = local(None, fake)
    pacer.rate_limited(2.0)
    pacer.rate_limited(2.0)  # its siblings' 429s, answered to requests sent before: one pause

    await take(pacer)

    assert fake.now == pytest.approx(2.0)
    assert pacer.pauses == 1


async def test_a_pause_longer_than_the_caller_waits_is_refused_with_no_turn_taken() -> None:
    fake = FakeTime()
    pacer = local(10.0, fake)
    pacer.rate_limited(5.0)

    with pytest.raises(RateLimitError, match="paused") as caught:
        pacer.acquire(max_wait=1.0)

    assert caught.value.retry_after == pytest.approx(5.0)
    assert caught.value.may_have_been_sent is False
    await take(pacer)  # the refused call took no turn: the next is the first after the pause
    assert fake.now == pytest.approx(5.0)


async def test_a_pause_that_grows_while_a_turn_waits_is_waited_out_too() -> None:
    fake = FakeTime()
    pacer = local(None, fake)
    pacer.rate_limited(1.0)
    wait = pacer.acquire()
    assert wait is not None
    pacer.rate_limited(3.0)  # another request heard a longer Retry-After meanwhile

    await wait

    assert fake.now == pytest.approx(3.0)


async def test_a_retry_after_of_zero_does_not_pause_and_sporadic_429s_barely_slow() -> None:
    fake = FakeTime()
    pacer = local(100.0, fake)
    for turn in range(1000):  # 10 seconds at 100/s, 2% of them answered 429
        await take(pacer)
        if turn % 50 == 0:
            pacer.rate_limited(0.0)

    assert pacer.pauses == 0
    assert pacer.rate is not None and pacer.rate >= 95.0
    assert fake.now == pytest.approx(10.0, rel=0.05)


async def test_the_rate_falls_to_what_the_service_accepted_then_recovers_to_the_target() -> None:
    fake = FakeTime()
    pacer = local(100.0, fake)
    for turn in range(100):  # one second, half of it refused
        await take(pacer)
        if turn % 2:
            pacer.rate_limited(None)
    fake.now += 0.01
    await take(pacer)  # the first turn of the next second closes the window

    assert pacer.rate == pytest.approx(50.0 + 5.0, rel=0.05)  # what was accepted, a step up
    fake.now += 5.0
    await take(pacer)
    assert pacer.rate == pytest.approx(55.0 + 5 * 5.0, rel=0.05)  # +5% of the target a second
    fake.now += 100
    await take(pacer)
    assert pacer.rate == 100.0  # never above the target


async def test_without_a_rate_refusals_slow_the_measured_rate() -> None:
    fake = FakeTime()
    pacer = local(None, fake)
    for _ in range(200):  # 200 requests over one second, every one refused
        await take(pacer)
        fake.now += 0.005
        pacer.rate_limited(None)
    await take(pacer)

    assert pacer.rate is not None and pacer.rate < 200 * 0.1  # from ~200/s measured


async def test_a_chained_pacer_waits_for_both_and_tells_both_of_a_429() -> None:
    fake = FakeTime()
    client_wide, run = local(None, fake), local(10.0, fake)
    chained = ChainedPacer(client_wide, run)
    assert isinstance(chained, Pacer)

    await take(chained)
    chained.rate_limited(0.5)
    await take(chained)
    await take(chained)

    assert client_wide.pauses == 1 and run.pauses == 1
    assert fake.now == pytest.approx(0.6)  # the pause, then the run's own spacing


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), "10", True])
def test_a_rate_that_is_not_a_positive_number_is_refused(rate: object) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit") as caught:
        LocalPacer(rate)  # type: ignore[arg-type]
    assert caught.value.field == "rate_limit"
