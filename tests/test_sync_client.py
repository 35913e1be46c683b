"""The blocking client under what scripts, threads, notebooks and servers do to it."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _support import FROM, TO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import voipnumber_sync
from voipnumber_async.sandbox import OTHER_ACCOUNT_NUMBER, Fault, Sandbox
from voipnumber_async.testing import MockResponse, MockTransport
from voipnumber_sync import (
    ClientClosedError,
    NumberOwnershipError,
    OutcomeUnknownError,
    RetryPolicy,
    SentMessage,
    TransportRequest,
    VoipNumber,
)
from voipnumber_sync._portal import Portal, portal

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.005)


@pytest.fixture
def client(voipnumber_sandbox: Sandbox) -> Iterator[VoipNumber]:
    with VoipNumber(**voipnumber_sandbox.client_settings(), retry=FAST) as running:
        yield running


def test_send_blocks_and_returns_the_queued_message(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    message = client.sms.send(FROM, TO, "Thank you")

    assert isinstance(message, SentMessage)
    assert message.status == "queued"
    assert [m.id for m in voipnumber_sandbox.messages] == [message.id]


def test_credentials_come_from_the_environment(voipnumber_env: Sandbox) -> None:
    with VoipNumber() as client:
        client.sms.send(from_=FROM, to=TO, body="env")

    assert voipnumber_env.messages[0].body == "env"


def test_retries_behave_as_in_the_async_client(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    voipnumber_sandbox.inject(Fault.unavailable(times=2))

    client.sms.send(FROM, TO, "retried")

    assert len(voipnumber_sandbox.requests) == 3
    assert len(voipnumber_sandbox.messages) == 1
    assert len({r.idempotency_key for r in voipnumber_sandbox.requests}) == 1


def test_errors_are_the_same_classes_with_the_same_attributes(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    voipnumber_sandbox.inject(Fault.server_error())
    with pytest.raises(OutcomeUnknownError) as caught:
        client.sms.send(FROM, TO, "x")

    error = caught.value
    assert type(error) is voipnumber_sync.OutcomeUnknownError
    assert error.http_status == 500
    assert error.attempts == 1
    assert error.idempotency_key == voipnumber_sandbox.messages[0].idempotency_key


def test_an_errors_traceback_points_at_the_callers_line(client: VoipNumber) -> None:
    try:
        client.sms.send(OTHER_ACCOUNT_NUMBER, TO, "x")
        line = -1
    except NumberOwnershipError as error:
        line = sys._getframe().f_lineno - 3
        frames = traceback.extract_tb(error.__traceback__)
    assert line > 0
    assert any(f.filename == __file__ and f.lineno == line for f in frames)
    assert frames[0].filename == __file__  # the caller's frame comes first


def test_with_options_returns_a_sync_copy_sharing_the_pool(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    copy = client.with_options(max_retries=0)
    voipnumber_sandbox.inject(Fault.unavailable())

    assert isinstance(copy, VoipNumber)
    with pytest.raises(voipnumber_sync.ServiceUnavailableError):
        copy.sms.send(FROM, TO, "x")
    copy.close()
    client.sms.send(FROM, TO, "still open")
    assert copy._async._transport is client._async._transport
    assert len(voipnumber_sandbox.messages) == 1


def test_close_twice_is_fine_and_a_closed_client_says_so(voipnumber_sandbox: Sandbox) -> None:
    client = VoipNumber(**voipnumber_sandbox.client_settings())
    client.sms.send(FROM, TO, "x")
    client.close()
    client.close()

    assert client.closed
    with pytest.raises(ClientClosedError, match="closed"):
        client.sms.send(FROM, TO, "after")
    assert len(voipnumber_sandbox.requests) == 1


def test_repr_hides_the_token_and_the_client_cannot_be_pickled() -> None:
    client = VoipNumber("acc", "tok_very_secret")

    assert repr(client).startswith("VoipNumber(account_id='acc'")
    assert "tok_very_secret" not in repr(client)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(client)


def test_many_threads_share_one_client_and_send_each_message_once(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []

    def worker(number: int) -> None:
        for index in range(50):
            try:
                ids.append(client.sms.send(FROM, TO, f"{number}-{index}").id)
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(ids)) == 32 * 50
    bodies = [m.body for m in voipnumber_sandbox.messages]
    assert sorted(bodies) == sorted(f"{n}-{i}" for n in range(32) for i in range(50))
    assert all(len(group) == 1 for group in voipnumber_sandbox.messages_by_key().values())


def test_calls_from_many_threads_all_start_whether_the_loop_is_busy_or_asleep() -> None:
    # A lost hand-off or wake-up would leave a thread blocked for good, so every thread
    # must finish. Tiny calls from 32 threads keep the loop switching between busy and
    # asleep.
    async def echo(number: int) -> int:
        await asyncio.sleep(0)
        return number

    results: list[list[int]] = [[] for _ in range(32)]

    def worker(slot: list[int], first: int) -> None:
        slot.extend(portal().call(echo, n) for n in range(first, first + 300))

    threads = [
        threading.Thread(target=worker, args=(results[n], n * 300), daemon=True) for n in range(32)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

    assert not any(thread.is_alive() for thread in threads), "a call was never started"
    assert [number for slot in results for number in slot] == list(range(32 * 300))


def test_a_call_the_loop_cannot_take_gets_the_loops_error_and_leaves_no_coroutine() -> None:
    # The coroutine is made on the loop, so a call refused before it gets there (the
    # loop is closed) leaves no "coroutine ... was never awaited" behind.
    own = Portal()
    assert own.loop.is_running()
    own.shutdown()
    own.loop.close()

    async def never_run() -> None:
        raise AssertionError("must not run")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            own.call(never_run)
        gc.collect()


def test_a_caller_inside_a_running_event_loop_is_served(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    async def notebook_cell() -> SentMessage:
        return client.sms.send(FROM, TO, "from a running loop")  # as Jupyter would

    message = asyncio.run(notebook_cell())

    assert message.id == voipnumber_sandbox.messages[0].id


def test_a_call_from_the_portals_own_thread_raises_instead_of_deadlocking(
    client: VoipNumber,
) -> None:
    async def on_the_portal() -> None:
        client.sms.send(FROM, TO, "from inside")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="portal's own thread"):
        portal().call(on_the_portal)
    assert time.monotonic() - started < 5


def test_ctrl_c_cancels_the_request_promptly_and_the_client_stays_usable(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    voipnumber_sandbox.inject(Fault.slow(2.5))
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.sms.send(FROM, TO, "interrupted")
    finally:
        timer.cancel()

    assert time.monotonic() - started < 2  # well before the 2.5s answer

    async def others_running() -> int:
        return len(asyncio.all_tasks() - {asyncio.current_task()})

    assert portal().call(others_running) == 0  # the interrupted send was cancelled
    message = client.sms.send(FROM, TO, "after ctrl-c")
    assert message.body == "after ctrl-c"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_loop_and_session(
    client: VoipNumber, voipnumber_sandbox: Sandbox
) -> None:
    client.sms.send(FROM, TO, "parent before fork")

    pid = os.fork()
    if pid == 0:  # the child: report by exit status only, never return into pytest
        code = 1
        try:
            client.sms.send(FROM, TO, "child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    client.sms.send(FROM, TO, "parent after fork")
    assert [m.body for m in voipnumber_sandbox.messages] == [
        "parent before fork",
        "child",
        "parent after fork",
    ]


EXIT_SCRIPT = """
import gc, sys
from voipnumber_sync import VoipNumber
from voipnumber_async.sandbox import Sandbox

with Sandbox().serve_in_thread() as sandbox:
    dropped = VoipNumber(**sandbox.client_settings())
    dropped.sms.send("+447445459147", "+447483866525", "dropped")
    del dropped
    gc.collect()
    kept = VoipNumber(**sandbox.client_settings())   # still open at exit
    kept.sms.send("+447445459147", "+447483866525", "kept")
    print(len(sandbox.messages))
"""


def test_clients_left_open_never_hold_up_interpreter_exit() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", textwrap.dedent(EXIT_SCRIPT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stderr
    assert "not closed" in result.stderr  # the dropped client was reported, once
    assert result.stderr.count("not closed") == 1


def test_the_portal_iterates_async_iterators_and_closes_them_early() -> None:
    closed: list[bool] = []

    async def numbers() -> object:
        try:
            for number in range(5):
                yield number
        finally:
            closed.append(True)

    iterator = portal().iterate(numbers())  # type: ignore[arg-type]
    assert [next(iterator), next(iterator)] == [0, 1]
    iterator.close()  # type: ignore[attr-defined]

    assert closed == [True]
    assert list(portal().iterate(numbers())) == [0, 1, 2, 3, 4]  # type: ignore[arg-type]


# --- sync iterators: batched hand-offs --------------------------------------------------


class CountingPortal(Portal):
    """The process's portal, counting the hand-offs made through it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def call(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return portal().call(function, *args, **kwargs)


async def steps(plan: list[tuple[int, bool]], error_at: int | None = None) -> AsyncIterator[int]:
    """Yields each value of `plan`; `True` beside it: only after giving up the loop."""
    for position, (value, suspends) in enumerate(plan):
        if position == error_at:
            raise ValueError(f"failed at {position}")
        if suspends:
            await asyncio.sleep(0.0005)
        yield value


def test_a_sync_iterator_takes_the_ready_items_in_few_hand_offs() -> None:
    counting = CountingPortal()

    items = list(counting.iterate(steps([(n, False) for n in range(200)])))

    assert items == list(range(200))
    assert counting.calls <= 200 // 64 + 2  # batches, and the end; not one hop per item


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.tuples(st.integers(), st.booleans()), max_size=150),
    error_at=st.none() | st.integers(min_value=0, max_value=150),
)
def test_a_batched_sync_iterator_yields_what_async_for_yields(
    plan: list[tuple[int, bool]], error_at: int | None
) -> None:
    async def plainly() -> tuple[list[int], str | None]:
        got: list[int] = []
        try:
            async for value in steps(plan, error_at):
                got.append(value)  # noqa: PERF401 - the items before an error count too
        except ValueError as error:
            return got, str(error)
        return got, None

    expected = portal().call(plainly)
    batched: list[int] = []
    failure: str | None = None
    iterator = portal().iterate(steps(plan, error_at))
    try:
        for value in iterator:
            batched.append(value)  # noqa: PERF402 - the items before an error count too
    except ValueError as error:
        failure = str(error)

    assert (batched, failure) == expected  # every item once, in order, the error after
    assert list(iterator) == []  # over for good once it ended or failed


def test_closing_a_sync_iterator_mid_way_cancels_its_step_ahead_and_closes_it() -> None:
    closed: list[bool] = []
    release = asyncio.Event()

    async def waits_after_two() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
            await release.wait()  # never set: the step ahead is left waiting here
            yield 3
        finally:
            closed.append(True)

    iterator = portal().iterate(waits_after_two())
    assert [next(iterator), next(iterator)] == [1, 2]
    iterator.close()

    async def others_running() -> int:
        return len(asyncio.all_tasks() - {asyncio.current_task()})

    assert closed == [True]
    assert portal().call(others_running) == 0
    assert list(iterator) == []


def test_a_sync_iterator_dropped_mid_way_closes_the_async_one_on_the_loop() -> None:
    closed = threading.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(0)
                yield 0
        finally:
            closed.set()

    iterator = portal().iterate(endless())
    next(iterator)
    del iterator
    gc.collect()

    assert closed.wait(10)


def mock_client(sent: list[str]) -> VoipNumber:
    def handler(request: TransportRequest) -> MockResponse:
        sent.append(request.json()["body"])
        return MockResponse.queued(request)

    return VoipNumber("AC1", "tok", transport=MockTransport(handler))


def test_send_many_through_batches_yields_every_result_once_in_order() -> None:
    sent: list[str] = []
    with mock_client(sent) as client:
        messages = [(FROM, TO, f"m{n}") for n in range(500)]
        with client.sms.send_many(messages, concurrency=8, ordered=True) as results:
            indexes = [result.index for result in results]

    assert indexes == list(range(500))
    assert results.summary.sent == 500
    assert sorted(sent) == sorted(f"m{n}" for n in range(500))


def test_leaving_send_many_mid_way_stops_the_run() -> None:
    sent: list[str] = []
    with mock_client(sent) as client:
        messages = ((FROM, TO, f"m{n}") for n in range(100_000))
        with client.sms.send_many(messages, concurrency=4) as results:
            for taken, _ in enumerate(results):
                if taken == 20:
                    break
        count = len(sent)

        assert count < 1_000  # the input was read no further than the window
        assert next(results, None) is None  # closed: nothing more comes
        client.sms.send(FROM, TO, "the client goes on")
    assert len(sent) == count + 1


def test_shutdown_closes_the_clients_still_open_with_their_aclose() -> None:
    own = Portal()
    closed: list[str] = []

    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

        async def aclose(self) -> None:
            closed.append(self.name)

    kept, dropped = Client("kept"), Client("dropped")
    own.close_at_exit(kept)
    own.close_at_exit(dropped)
    del dropped  # held weakly: a dropped client is not kept alive for exit
    gc.collect()
    assert own.loop.is_running()
    own.shutdown()

    assert closed == ["kept"]
    assert not own.loop.is_running()
    own.loop.close()


def test_a_sync_client_is_closed_at_exit_by_its_public_aclose() -> None:
    client = VoipNumber("AC1", "tok", transport=MockTransport(MockResponse.queued))

    assert client._async in list(portal()._clients)
