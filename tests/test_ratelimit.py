"""The sans-I/O rate-limit core: header parsing, layers, pacing, blocks (no network)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from realtimekit_async import (
    DEFAULT_RATE_LIMITS,
    GLOBAL_RATE_LIMITS,
    RateBudget,
    RateLimit,
    RateLimits,
    ValidationError,
)
from realtimekit_async._ratelimit import Quota, RateLimiter, parse_rate_headers, to_rate_limits

from ._ratelimit_sim import simulate

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


# -- configuration ---------------------------------------------------------------------


def test_defaults_are_the_documented_limits() -> None:
    assert DEFAULT_RATE_LIMITS.layers == (RateLimit(1000, 50.0), RateLimit(3500, 300.0))
    assert DEFAULT_RATE_LIMITS.adaptive is True
    assert GLOBAL_RATE_LIMITS.layers == (*DEFAULT_RATE_LIMITS.layers, RateLimit(1200, 300.0))


def test_rate_limit_argument_forms() -> None:
    assert to_rate_limits(None) is None
    assert to_rate_limits(RateLimit(5, 1)) == RateLimits((RateLimit(5, 1),))
    assert RateLimits(RateLimit(5, 1)).layers == (RateLimit(5, 1),)
    assert to_rate_limits(GLOBAL_RATE_LIMITS) is GLOBAL_RATE_LIMITS
    with pytest.raises(ValidationError, match="rate_limit"):
        to_rate_limits((5, 1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"rate_limit\.layers"):
        RateLimits(((5, 1),))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"rate_limit\.period"):
        RateLimit(5, float("inf"))


# -- headers ---------------------------------------------------------------------------


def test_parses_several_structured_items_joined_with_their_policies() -> None:
    found = parse_rate_headers(
        headers(
            ("Ratelimit", '"default";r=50;t=30, "burst";r=3;t=1'),
            ("RateLimit-Policy", '"burst";q=100;w=60'),
            ("ratelimit-policy", '"default";q=1000;w=3600;pk=:YWJj:'),
        )
    )
    assert found == (
        Quota("default", remaining=50, reset=30.0, limit=1000, window=3600.0),
        Quota("burst", remaining=3, reset=1.0, limit=100, window=60.0),
    )


def test_policy_alone_and_tokens_as_names() -> None:
    found = parse_rate_headers({"ratelimit-policy": "hourly;q=10;w=3600"})
    assert found == (Quota("hourly", limit=10, window=3600.0),)


def test_parses_the_older_x_ratelimit_headers() -> None:
    found = parse_rate_headers(
        {
            "X-RateLimit-Limit": "1200",
            "X-RateLimit-Remaining": "7",
            "X-RateLimit-Reset": "Wed, 01 Jan 2025 12:04:10 GMT",
        },
        now=NOW,
    )
    assert found == (Quota("x-ratelimit", remaining=7, reset=250.0, limit=1200),)
    epoch = parse_rate_headers({"x-ratelimit-reset": str(int(NOW.timestamp()) + 40)}, now=NOW)
    assert epoch == (Quota("x-ratelimit", reset=40.0),)
    delta = parse_rate_headers({"x-ratelimit-reset": "12"}, now=NOW)
    assert delta == (Quota("x-ratelimit", reset=12.0),)


@pytest.mark.parametrize(
    "bad",
    [
        {"Ratelimit": '"default";r=-1;t=30'},  # negative remaining
        {"Ratelimit": '"default";r=?1;t=30'},  # a boolean
        {"Ratelimit": '"default";r="5"'},  # a string
        {"Ratelimit": '"default;r=5'},  # unterminated string
        {"Ratelimit": "(a b);r=5"},  # an inner list
        {"Ratelimit": "\u00e9;r=5"},  # not ASCII
        {"Ratelimit-Policy": '"a";q=0;w=0'},
        {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "soon"},
    ],
)
def test_malformed_headers_are_ignored(bad: dict[str, str]) -> None:
    assert parse_rate_headers(bad) == ()


_names = st.sampled_from(
    (
        "Ratelimit",
        "Ratelimit-Policy",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
    )
)
_values = st.one_of(
    st.text(max_size=60),
    st.from_regex(r'"[a-z]{1,5}";r=-?[0-9]{1,4}(;t=[0-9.]{1,5})?(, ?"b";q=[0-9]{1,3})?'),
)


@given(st.lists(st.tuples(_names, _values), max_size=6))
def test_any_header_text_never_raises(pairs: list[tuple[str, str]]) -> None:
    for quota in parse_rate_headers(headers(*pairs), now=NOW):
        assert quota.remaining is None or quota.remaining >= 0
        assert quota.reset is None or quota.reset >= 0
        assert quota.limit is None or quota.limit >= 1
        assert quota.window is None or quota.window > 0
    limiter = RateLimiter(DEFAULT_RATE_LIMITS)
    ticket = limiter.record(0.0)
    limiter.observe(ticket, 429, headers(*pairs), b"", now=0.0, max_wait=60.0, wall=NOW)
    limiter.observe(ticket, 200, headers(*pairs), b"", now=0.0, max_wait=60.0, wall=NOW)
    delay, _ = limiter.delay(0.0)
    assert delay >= 0
    assert limiter.budget(0.0).remaining is not None


# -- layers ----------------------------------------------------------------------------


def send_all(limiter: RateLimiter, arrivals: list[float]) -> list[float]:
    """Send a request as soon as allowed after each arrival (in order); the send times."""
    sent, clock = [], 0.0
    for arrival in arrivals:
        clock = max(clock, arrival)
        delay, _ = limiter.delay(clock)
        clock += delay
        limiter.record(clock)
        sent.append(clock)
    return sent


def test_layers_allow_a_full_window_at_once_then_wait_for_it_to_pass() -> None:
    limiter = RateLimiter(RateLimits((RateLimit(3, 10.0), RateLimit(5, 100.0)), adaptive=False))
    assert send_all(limiter, [0, 0, 0, 0, 0, 0, 0, 0]) == [0, 0, 0, 10, 10, 100, 100, 100]
    assert limiter.delay(100.0) == (10.0, "client limit 3/10s")


@given(
    st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60).map(sorted),
    st.integers(1, 6),
    st.floats(0.5, 10),
)
def test_no_window_ever_holds_more_than_the_layer_allows(
    arrivals: list[float], count: int, period: float
) -> None:
    # The property a leaky bucket (aiolimiter) sized count/period lacks: it lets
    # up to twice the count through in one window (a full bucket, then the drip).
    limiter = RateLimiter(RateLimits((RateLimit(count, period),), adaptive=False))
    sent = send_all(limiter, arrivals)
    for i, start in enumerate(sent):
        inside = [t for t in sent[i:] if t < start + period - 1e-9]
        assert len(inside) <= count
    assert all(s >= a for s, a in zip(sent, arrivals, strict=True))


# -- pacing by the server's budget -----------------------------------------------------


def answer(limiter: RateLimiter, ticket: int, now: float, value: str, status: int = 200) -> None:
    limiter.observe(
        ticket,
        status,
        headers(("Ratelimit", value), ("Ratelimit-Policy", '"default";q=100;w=10')),
        b"",
        now=now,
        max_wait=60.0,
    )


def test_no_pacing_while_more_than_half_is_left() -> None:
    limiter = RateLimiter(RateLimits(()))
    answer(limiter, limiter.record(0.0), 0.0, '"default";r=51;t=10')
    assert limiter.delay(0.0) == (0.0, "")


def test_the_rest_is_spread_over_the_time_left() -> None:
    limiter = RateLimiter(RateLimits(()))
    answer(limiter, limiter.record(0.0), 0.0, '"default";r=9;t=10')
    delay, reason = limiter.delay(0.0)
    assert delay == pytest.approx(1.0)  # 9 left, 10 s: one every 10 / (9 + 1) s
    assert reason == "server quota 'default': 9 left"
    sent = send_all(limiter, [0.0] * 9)
    gaps = [b - a for a, b in itertools.pairwise([0.0, *sent])]
    assert all(0.9 <= gap <= 1.15 for gap in gaps), gaps
    assert sent[-1] < 10.0
    delay, _ = limiter.delay(sent[-1])  # spent: wait for the reset, then a full window
    assert sent[-1] + delay == pytest.approx(10.0)
    assert limiter.delay(10.0) == (0.0, "")


def test_an_overtaken_answer_does_not_undo_a_newer_one() -> None:
    limiter = RateLimiter(RateLimits(()))
    first, second = limiter.record(0.0), limiter.record(0.0)
    answer(limiter, second, 0.1, '"default";r=0;t=5')
    answer(limiter, first, 0.2, '"default";r=1;t=5')
    assert limiter.delay(0.2)[0] == pytest.approx(4.9)


def test_a_late_answer_from_the_window_that_ended_is_ignored() -> None:
    limiter = RateLimiter(RateLimits(()))
    answer(limiter, limiter.record(0.0), 0.0, '"default";r=1;t=1')
    late = limiter.record(0.5)  # the last request of the window, answered after its reset
    assert limiter.delay(1.0) == (0.0, "")  # the new window: 100 again
    fresh = limiter.record(1.0)
    answer(limiter, late, 1.01, '"default";r=0;t=1')
    budget = limiter.budget(1.01)
    assert (budget.remaining, budget.limit) == (99, 100)  # not 0 for a second
    answer(limiter, fresh, 1.02, '"default";r=99;t=10')
    assert limiter.budget(1.02).remaining == 99
    assert limiter.delay(1.02) == (0.0, "")  # nor mistaken for another process


def test_reset_times_in_whole_seconds_are_refined() -> None:
    limiter = RateLimiter(RateLimits(()))
    answer(limiter, limiter.record(0.0), 0.0, '"default";r=0;t=5')  # true reset in (4, 5]
    answer(limiter, limiter.record(0.7), 0.7, '"default";r=0;t=4')  # (3.7, 4.7]
    assert limiter.delay(0.7)[0] == pytest.approx(4.0)  # waits until 4.7, not 5
    budget = limiter.budget(0.7)
    assert (budget.remaining, budget.limit, budget.source) == (0, 100, "default")
    assert budget.reset == pytest.approx(4.0)


def test_other_spenders_are_noticed_and_left_a_margin() -> None:
    limiter = RateLimiter(RateLimits(()))
    answer(limiter, limiter.record(0.0), 0.0, '"default";r=90;t=10')
    assert limiter.delay(0.0) == (0.0, "")  # alone so far: 90 of 100 need no pacing
    answer(limiter, limiter.record(0.1), 0.1, '"default";r=80;t=10')  # 9 more than ours
    delay, _ = limiter.delay(0.1)
    assert delay > 0  # shared: paced from now on
    answer(limiter, limiter.record(1.0), 1.0, '"default";r=3;t=9')
    # 3 left, but a 3 % margin is kept for the others' requests in flight
    assert limiter.delay(1.0)[0] == pytest.approx(9.0)


def test_a_short_429_pauses_everything_for_its_retry_after() -> None:
    limiter = RateLimiter(DEFAULT_RATE_LIMITS)
    retry = headers(("Retry-After", "7"))
    limiter.observe(limiter.record(0.0), 429, retry, b"", now=1.0, max_wait=60)
    assert limiter.delay(1.0) == (7.0, "Retry-After of an earlier 429")
    assert limiter.blocked(1.0) is None


def test_a_429_longer_than_the_retry_cap_starts_a_block() -> None:
    limiter = RateLimiter(DEFAULT_RATE_LIMITS)
    body = b'{"errors": [{"code": 971, "message": "blocked"}]}'
    retry = headers(("Retry-After", "300"))
    limiter.observe(limiter.record(0.0), 429, retry, body, now=1.0, max_wait=60)
    block = limiter.blocked(100.0)
    assert block is not None
    assert (block.until, block.body) == (301.0, body)
    budget = limiter.budget(100.0)
    assert (budget.remaining, budget.blocked) == (0, True)
    assert budget.reset == pytest.approx(201.0)
    assert limiter.blocked(301.0) is None


def test_budget_from_the_layers_before_any_answer() -> None:
    limiter = RateLimiter(RateLimits((RateLimit(10, 60.0), RateLimit(100, 300.0))))
    assert limiter.budget(0.0) == RateBudget(10, 10, 0.0, "client")
    limiter.record(5.0)
    assert limiter.budget(20.0) == RateBudget(9, 10, 45.0, "client")
    assert RateLimiter(RateLimits(())).budget(0.0) == RateBudget(None, None, None, "none")


def test_not_adaptive_ignores_the_headers() -> None:
    limiter = RateLimiter(RateLimits((), adaptive=False))
    answer(limiter, limiter.record(0.0), 0.0, '"default";r=0;t=10')
    assert limiter.delay(0.0) == (0.0, "")


# -- convergence, simulated (the real thing runs in benchmarks/) -----------------------


def test_one_process_uses_the_whole_budget_without_a_429() -> None:
    result = simulate(processes=1, requests_each=450, quota=100, window=5.0)
    assert result.refused == 0
    assert result.rate_over_complete_windows() >= 0.95 * 100 / 5


def test_four_processes_sharing_a_budget_converge() -> None:
    result = simulate(processes=4, requests_each=120, quota=100, window=5.0)
    assert result.per_process == [120] * 4
    assert result.refused <= 0.01 * (result.served + result.refused)
    assert result.rate_over_complete_windows() >= 0.85 * 100 / 5
