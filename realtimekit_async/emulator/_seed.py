"""Deterministic seed data: meetings and recordings spread over the past weeks."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from ._state import LifecycleConfig, Meeting, Recording, compute_file_size
from ._util import new_uuid

__all__ = ["generate_seed_data"]

_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
# No seeded URL expires this soon after the start: on a fast clock (the CLI's
# embedded emulator runs at 30x) such URLs would expire while an export runs,
# and each restart would bring new ones, so a rerun would find files to fetch.
_QUIET_AFTER_START = 6 * _HOUR
_TOPICS = (
    "Platform",
    "Design",
    "Sales",
    "Support",
    "Engineering",
    "Marketing",
    "Product",
    "Finance",
    "Onboarding",
    "Security",
    "Data",
    "Mobile",
)
_FORMATS = (
    "Standup",
    "Sync",
    "Review",
    "Retro",
    "All-Hands",
    "Planning",
    "Demo",
    "Interview",
    "Office Hours",
    "Kickoff",
)
_REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")


def _file_name(meeting: Meeting, recording_id: str) -> str:
    # Only what the seed draws, never a time: seeded times are relative to the
    # emulator's start, and a name that moved with them would make every restart
    # look like a different set of files (and an export rerun fetch them all again).
    return f"recording_{meeting.id}_{recording_id[:8]}.mp4"


def _seeded_expiry(expiry_ms: int, now_ms: int) -> int:
    """A URL expiring within the quiet window after the start is expired already."""
    if now_ms < expiry_ms < now_ms + _QUIET_AFTER_START:
        expiry_ms = now_ms
    return expiry_ms // 1000 * 1000


def generate_seed_data(
    *,
    seed: int,
    recordings: int,
    meetings: int | None,
    now_ms: int,
    config: LifecycleConfig,
    caller: Mapping[str, Any],
) -> tuple[list[Meeting], list[Recording]]:
    """Build ``recordings`` recordings over ``meetings`` meetings (default: one per 5).

    Same arguments give identical data, and a later ``now_ms`` only moves the
    times: ids, names, sizes and statuses depend on the seed alone. About 90%
    of settled recordings are UPLOADED (5% of those without RealtimeKit bucket
    URLs), the rest ERRORED; invoked times spread over the last 30 days, so most
    download URLs (valid ``url_ttl``) have expired, and none expires in the 6
    hours after ``now_ms``. One seeded recording in 50 is still active
    (RECORDING or PAUSED, at most one per meeting, invoked in the last 30 min).
    Raises ValueError for negative counts or recordings without meetings.
    """
    if recordings < 0 or (meetings is not None and meetings < 0):
        raise ValueError("recordings and meetings must be >= 0")
    n_meetings = meetings if meetings is not None else math.ceil(recordings / 5)
    if recordings and not n_meetings:
        raise ValueError("seeded recordings need at least one meeting")
    rng = random.Random(f"rtk-emulator-seed:{seed}")
    ttl_ms = round(config.url_ttl * 1000)
    bps = config.bytes_per_second
    api_caller = dict(caller)

    meeting_list: list[Meeting] = []
    for i in range(n_meetings):
        created = now_ms - rng.randrange(31 * _DAY, 60 * _DAY)
        meeting_list.append(
            Meeting(
                id=new_uuid(rng),
                title=f"{rng.choice(_TOPICS)} {rng.choice(_FORMATS)} {i + 1}",
                created_ms=created,
                updated_ms=created,
                status="INACTIVE" if rng.random() < 0.05 else "ACTIVE",
                live_stream_on_start=rng.random() < 0.1,
                persist_chat=rng.random() < 0.5,
                record_on_start=rng.random() < 0.2,
                session_keep_alive_time_in_secs=rng.choice((60, 120, 300)),
                summarize_on_end=rng.random() < 0.3,
            )
        )

    active_pool = [m for m in meeting_list if m.status == "ACTIVE"]
    n_active = min(len(active_pool), recordings // 50)
    active_meetings = rng.sample(active_pool, n_active)

    recs: list[Recording] = []
    rand = rng.random

    def randrange(lo: int, hi: int) -> int:
        # random() scaling is several times faster than Random.randrange here.
        return lo + int(rand() * (hi - lo))

    api_start = {"caller": api_caller, "reason": "API_CALL"}
    system_start = {"reason": "RECORD_ON_START"}
    api_stop = {"caller": api_caller, "reason": "API_CALL"}
    peers_stop = {"reason": "ALL_PEERS_LEFT"}
    for _ in range(recordings - n_active):
        meeting = meeting_list[int(rand() * n_meetings)]
        rid = new_uuid(rng)
        invoked = now_ms - randrange(3 * _HOUR, 30 * _DAY)
        started = invoked + randrange(1000, 5000)
        uploaded_ok = rand() < 0.9
        duration = randrange(30, 7200) if uploaded_ok else randrange(0, 5)
        stopped = started + duration * 1000 + randrange(0, 1000)
        bucket = rand() >= 0.05
        has_audio = rand() < 0.3
        storage = (
            {
                "type": "aws",
                "bucket": f"recordings-{meeting.id[:8]}",
                "region": rng.choice(_REGIONS),
                "path": "meetings/",
            }
            if rand() < 0.1
            else None
        )
        # Shared (never mutated) reason dicts keep 100k-recording seeds light.
        start_reason = api_start if rand() < 0.85 else system_start
        stop_reason = api_stop if rand() < 0.7 else peers_stop
        rec = Recording(
            id=rid,
            meeting_id=meeting.id,
            status="UPLOADED" if uploaded_ok else "ERRORED",
            invoked_ms=invoked,
            output_file_name=_file_name(meeting, rid),
            has_audio=has_audio,
            bucket_enabled=bucket,
            storage_config=storage,
            start_reason=start_reason,
            stop_reason=stop_reason,
            started_ms=started,
            stopped_ms=stopped,
            session_id=new_uuid(rng),
            duration_s=duration,
            recorded_ms=stopped - started,
        )
        if uploaded_ok:
            uploaded_at = stopped + randrange(3000, 60_000)
            rec.file_size = compute_file_size(rid, duration, bps)
            if bucket:
                rec.expiry_ms = _seeded_expiry(uploaded_at + ttl_ms, now_ms)
            meeting.updated_ms = max(meeting.updated_ms, uploaded_at)
        else:
            meeting.updated_ms = max(meeting.updated_ms, stopped)
        recs.append(rec)

    for meeting in active_meetings:
        invoked = now_ms - randrange(_MINUTE, 30 * _MINUTE)
        started = invoked + 2000
        paused = rand() < 0.3
        session = new_uuid(rng)
        meeting.live_session_id = session
        meeting.session_started_ms = started
        meeting.updated_ms = max(meeting.updated_ms, started)
        rid = new_uuid(rng)
        rec = Recording(
            id=rid,
            meeting_id=meeting.id,
            status="PAUSED" if paused else "RECORDING",
            invoked_ms=invoked,
            output_file_name=_file_name(meeting, rid),
            has_audio=rand() < 0.3,
            start_reason={"caller": dict(api_caller), "reason": "API_CALL"},
            started_ms=started,
            session_id=session,
        )
        if paused:
            rec.recorded_ms = max(0, (now_ms - started) // 2)
        else:
            rec.segment_start_ms = started
        recs.append(rec)
    return meeting_list, recs
