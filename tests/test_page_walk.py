"""The list walk's rules (:class:`PageWalk`), without HTTP and without an event loop.

Each test plays the driver's part by hand: ask :meth:`PageWalk.to_fetch`,
answer, :meth:`PageWalk.take` in page order. The paginator over these rules is
tested in test_pagination.py and test_hostile_paging.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from realtimekit_async import PaginationError, Paging, Recording, RecordingPage, RecordingStatus
from realtimekit_async._pagination import MAX_REPAIR_PASSES, MAX_REPEATED_PAGES, PageWalk, Step

INVOKED = datetime(2025, 1, 1, tzinfo=UTC)


def page(ids: range | list[int], total: int | None, start: int | None = None) -> RecordingPage:
    data = tuple(Recording(str(i), RecordingStatus.UPLOADED, INVOKED, "r.mp4") for i in ids)
    end = None if start is None else start + len(data) - 1
    return RecordingPage(
        data=data, paging=Paging(start_offset=start, end_offset=end, total_count=total)
    )


def walk(prefetch: int = 3, per_page: int = 10, max_pages: int = 10_000) -> PageWalk:
    return PageWalk(start=1, per_page=per_page, prefetch=prefetch, max_pages=max_pages)


def answer(w: PageWalk, number: int, p: RecordingPage) -> RecordingPage:
    w.spend(number)
    w.answered(number, p.paging.total_count)
    return p


def ids(p: RecordingPage | None) -> list[str]:
    return [] if p is None else [r.id for r in p.data]


def test_the_first_page_goes_alone_then_up_to_prefetch_never_past_the_last() -> None:
    w = walk(prefetch=3)
    assert w.to_fetch(0) == [1]
    assert w.to_fetch(1) == []  # nothing more until the first answer is in
    step = w.take(answer(w, 1, page(range(10), total=45)))
    assert ids(step.fresh) == [str(i) for i in range(10)]
    assert not step.done
    assert w.to_fetch(0) == [2, 3, 4]
    assert w.to_fetch(3) == []
    w.take(answer(w, 2, page(range(10, 20), total=45)))
    assert w.to_fetch(2) == [5]  # page 5 is the last 45 recordings need
    assert w.to_fetch(0) == []


def test_the_page_size_is_what_the_server_sent_not_what_was_asked() -> None:
    w = walk(prefetch=8, per_page=200)
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(100), total=250)))
    assert w.page_size == 100
    assert w.to_fetch(0) == [2, 3]


def test_an_empty_page_ends_the_pass_despite_a_larger_total() -> None:
    w = walk()
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=100)))
    step = w.take(answer(w, 2, page([], total=100)))
    assert step == Step(None, done=True)


def test_an_empty_first_page_ends_the_pass() -> None:
    w = walk()
    w.to_fetch(0)
    assert w.take(answer(w, 1, page([], total=0))).done


def test_a_page_of_repeats_with_a_steady_total_ends_the_pass() -> None:
    w = walk()
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=30)))
    step = w.take(answer(w, 2, page(range(10), total=30)))
    assert step.fresh is None
    assert step.done


def test_repeats_a_growing_total_explains_are_allowed_a_few_times() -> None:
    w = walk(prefetch=1)
    w.to_fetch(0)
    total = 30
    w.take(answer(w, 1, page(range(10), total=total)))
    for _ in range(MAX_REPEATED_PAGES):
        total += 10
        step = w.take(answer(w, 2, page(range(10), total=total)))
        assert (step.fresh, step.done) == (None, False)
    total += 10
    assert w.take(answer(w, 2, page(range(10), total=total))).done


def test_fresh_drops_what_was_yielded_before() -> None:
    w = walk()
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=20)))
    step = w.take(answer(w, 2, page(range(5, 15), total=20)))
    assert ids(step.fresh) == [str(i) for i in range(10, 15)]
    assert step.fresh is not None
    assert step.fresh.paging.total_count == 20


def test_without_a_total_one_more_page_while_pages_come_back_full() -> None:
    w = walk(prefetch=4)
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=None)))
    assert w.to_fetch(0) == [2]
    w.take(answer(w, 2, page(range(10, 14), total=None)))
    assert w.to_fetch(0) == []


def test_the_budget_is_set_by_the_first_answer_and_spent_per_request() -> None:
    w = walk(prefetch=1)
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=10)))  # 1 page expected: 8 * 1 + 32 = 40
    for number in range(2, 41):
        w.spend(number)
    with pytest.raises(PaginationError) as caught:
        w.spend(41)
    assert caught.value.pages == 40
    assert "bound of 40" in str(caught.value)
    assert "10 recordings in pages of 10" in str(caught.value)


def test_max_pages_caps_a_walk_without_a_total() -> None:
    w = walk(max_pages=2)
    w.spend(1)
    w.spend(2)
    with pytest.raises(PaginationError):
        w.spend(3)


def test_a_steady_walk_needs_no_repair() -> None:
    w = walk()
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=10)))
    assert w.to_fetch(0) == []
    w.end_pass()
    assert w.repair_from is None
    assert not w.next_pass()


def test_a_moved_total_starts_a_repair_pass_in_page_order() -> None:
    w = walk(prefetch=3)
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=40)))
    assert w.to_fetch(0) == [2, 3, 4]
    # Answers arrive out of order; page 4 was cut after recording 5 went away, so
    # recording 30 slid back into page 3, which was cut before.
    second = answer(w, 2, page(range(10, 20), total=40))
    fourth = answer(w, 4, page(range(31, 40), total=39))
    third = answer(w, 3, page(range(20, 30), total=40))
    for p in (second, third, fourth):
        assert not w.take(p).done
    w.end_pass()
    assert w.repair_from == 2  # what page 4 lost may have slid back into page 3
    assert w.next_pass()
    assert w.to_fetch(0) == [2]
    assert w.to_fetch(1) == []  # a repair pass has one page in flight at a time
    step = w.take(answer(w, 2, page(range(11, 21), total=39)))
    assert (step.fresh, step.done) == (None, False)  # read before: not the end
    assert w.to_fetch(0) == [3]
    step = w.take(answer(w, 3, page(range(21, 31), total=39)))
    assert ids(step.fresh) == ["30"]  # the recording the first pass missed


def test_repeats_within_pages_an_earlier_pass_read_do_not_end_a_repair() -> None:
    w = walk(prefetch=1)
    w.to_fetch(0)
    w.take(answer(w, 1, page(range(10), total=30)))
    w.to_fetch(0)
    w.take(answer(w, 2, page(range(10, 20), total=31)))
    w.to_fetch(0)
    w.take(answer(w, 3, page(range(20, 30), total=31)))
    w.end_pass()
    assert w.next_pass()
    w.to_fetch(0)
    step = w.take(answer(w, 1, page(range(10), total=31)))
    assert (step.fresh, step.done) == (None, False)  # page 1 was read before: expected
    w.to_fetch(0)
    step = w.take(answer(w, 2, page(range(10, 20), total=31)))
    assert (step.fresh, step.done) == (None, False)


def test_repairs_stop_after_max_repair_passes() -> None:
    w = walk(prefetch=1)
    for pass_no in range(1 + MAX_REPAIR_PASSES):
        w.to_fetch(0)
        answer(w, 1, page(range(10), total=30 + pass_no))
        answer(w, 2, page(range(10, 20), total=31 + pass_no))
        w.end_pass()
        assert w.repair_from == 1
        assert w.next_pass() is (pass_no < MAX_REPAIR_PASSES)
    assert w.passes == 1 + MAX_REPAIR_PASSES
