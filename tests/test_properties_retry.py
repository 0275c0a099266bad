"""Property-based tests of the retry decisions, and of what is never retried.

Hypothesis settings stay modest so the default run stays fast; async scenarios run
each example in its own ``asyncio.run`` so every example starts from a clean loop.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtimekit_async import (
    APIConnectionError,
    APIStatusError,
    RecordingStatus,
    RetryPolicy,
)
from realtimekit_async._sansio import RETRYABLE_STATUSES, Failure, retry_delay
from realtimekit_async.emulator import Emulator, FaultConfig

from ._properties import FAST
from ._support import emulator_client

# -- retry decisions ----------------------------------------------------------------------

policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(min_value=0, max_value=20),
    initial_delay=st.floats(min_value=0, max_value=10),
    max_delay=st.floats(min_value=0, max_value=60),
    max_server_delay=st.floats(min_value=0, max_value=600),
)


@FAST
@given(
    policy=policies,
    attempt=st.integers(min_value=0, max_value=30),
    idempotent=st.booleans(),
    status=st.one_of(
        st.none(), st.sampled_from([200, 201, 400, 404, 409, 429, *RETRYABLE_STATUSES])
    ),
    failure=st.one_of(st.none(), st.sampled_from(Failure)),
    server=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from(["retry-after", "retry-after-ms"]),
            st.floats(min_value=0, max_value=1e5),
        ),
    ),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_retry_decision_for_any_policy(
    policy: RetryPolicy,
    attempt: int,
    idempotent: bool,
    status: int | None,
    failure: Failure | None,
    server: tuple[str, float] | None,
    jitter: float,
) -> None:
    headers = {} if server is None else {server[0]: repr(server[1])}
    given_delay = (
        None if server is None else server[1] / (1000 if server[0] == "retry-after-ms" else 1)
    )
    delay = retry_delay(
        policy,
        attempt,
        idempotent=idempotent,
        status=status,
        failure=failure,
        headers=headers,
        jitter=jitter,
    )
    provably_unprocessed = failure is Failure.CONNECT or status == 429
    maybe_processed = failure is Failure.AFTER_SEND or status in RETRYABLE_STATUSES
    should_retry = (
        attempt < policy.max_retries
        and (provably_unprocessed or (maybe_processed and idempotent))
        and (given_delay is None or given_delay <= policy.max_server_delay)
    )
    assert (delay is not None) == should_retry
    if delay is None:
        return
    # Retried only while attempts remain, for a retryable outcome ...
    assert attempt < policy.max_retries
    assert provably_unprocessed or maybe_processed
    # ... and a call that is not idempotent only if it provably did nothing.
    if not idempotent:
        assert provably_unprocessed
    # The wait: the server's, up to the cap; else backoff within [75 %, 100 %] of its cap.
    if given_delay is not None:
        assert delay == pytest.approx(given_delay)
        assert delay <= policy.max_server_delay
    else:
        ceiling = min(policy.initial_delay * 2.0**attempt, policy.max_delay)
        assert 0.75 * ceiling - 1e-9 <= delay <= ceiling + 1e-9
    assert math.isfinite(delay)
    assert delay >= 0


@FAST
@given(policy=policies, attempt=st.integers(min_value=0, max_value=30))
def test_a_server_delay_over_the_cap_is_never_waited(policy: RetryPolicy, attempt: int) -> None:
    too_long = policy.max_server_delay + 1
    for headers in ({"retry-after": str(too_long)}, {"retry-after-ms": str(too_long * 1000)}):
        assert retry_delay(policy, attempt, idempotent=True, status=429, headers=headers) is None


# Over HTTP against the emulator: which injected fault on a start could have been
# processed, and what the client does about it.
START_OUTCOMES = [
    # (fault, processed by the server, start() succeeds, starts counted)
    ("429", False, True, 1),  # retried: a 429 proves nothing happened
    ("slow", True, True, 1),
    ("500", False, False, 0),  # maybe processed as far as the client knows: not retried
    ("502", False, False, 0),
    ("503", False, False, 0),
    ("html", False, False, 0),
    ("reset", False, False, 0),
    ("truncate", True, False, 1),  # processed, answer lost: must not be retried
]


@pytest.mark.parametrize(("kind", "processed", "succeeds", "starts"), START_OUTCOMES)
async def test_start_is_never_repeated_after_it_could_have_been_processed(
    kind: str, processed: bool, succeeds: bool, starts: int
) -> None:
    faults = FaultConfig(
        first=1, kinds=(kind,), methods=("POST",), retry_after=0.01, slow_seconds=0.01
    )
    async with (
        Emulator(speed=0, faults=faults) as emu,
        emulator_client(emu, retries=5) as client,
    ):
        if succeeds:
            rec = await client.recordings.start("meeting-1")
            assert rec.status is RecordingStatus.INVOKED
        else:
            with pytest.raises((APIConnectionError, APIStatusError)):
                await client.recordings.start("meeting-1")
        assert emu.stats.starts_by_meeting["meeting-1"] == starts
        assert emu.stats.faults[kind] == 1
        if processed and not succeeds:
            # What a careful caller does next: ask, do not start again.
            active = await client.recordings.get_active("meeting-1")
            assert active.status is RecordingStatus.INVOKED


async def test_a_truncated_answer_to_a_read_is_retried() -> None:
    faults = FaultConfig(first=2, kinds=("truncate",))
    async with (
        Emulator(speed=0, recordings=3, faults=faults) as emu,
        emulator_client(emu, retries=3) as client,
    ):
        rid = next(iter(emu.store.recordings))
        assert (await client.recordings.get(rid)).id == rid
        assert emu.stats.faults["truncate"] == 2
