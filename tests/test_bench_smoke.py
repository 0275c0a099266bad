"""The benchmark harness runs end to end in quick mode and writes well-formed results.

No timing is asserted anywhere: quick-mode sizes are tiny and the machine is
shared. This only checks that every workload produced a row for every client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cloudflare", reason="the bench extra (official SDK) is not installed")
# The harness, not the SDK: its compatibility with the oldest dependencies is no promise.
pytestmark = pytest.mark.newest

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "list_0ms": ["floor", "floor_concurrent", "official", "sdk_prefetch1", "sdk"],
    "list_50ms": ["floor", "floor_concurrent", "official", "sdk_prefetch1", "sdk"],
    "decode": ["sdk", "official", "official_strict"],
    "waiter": ["sdk_filling", "sdk_full"],
    "percall": ["raw", "sdk"],
    "scale": ["floor_fixed", "floor_small", "floor_large", "sdk_fixed", "sdk_small", "sdk_large"],
    "export_files": ["raw", "raw_durable", "sdk"],
    "export_big": ["raw", "raw_durable", "sdk"],
    "export_s3_files": ["raw", "sdk"],
    "export_s3_big": ["raw", "sdk"],
    "ratelimit_one": ["sdk"],
    "ratelimit_four": ["sdk_x4"],
}


def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["meta"]["quick"] is True
    assert set(document["workloads"]) == set(EXPECTED)
    for key, clients in EXPECTED.items():
        workload = document["workloads"][key]
        assert list(workload["clients"]) == clients, key
        for client, entry in workload["clients"].items():
            assert entry["runs"], (key, client)
            for metric in ("wall", "cpu", "rss_peak"):
                assert isinstance(entry["median"][metric], float), (key, client, metric)
    names = [t["name"] for t in document["targets"]]
    assert len(names) == len(set(names)) >= 12
    for target in document["targets"]:
        assert isinstance(target["ok"], bool)
        assert isinstance(target["value"], float)
        assert isinstance(target["value_best"], float)
        assert isinstance(target["value_paired"], float)

    markdown = (tmp_path / "latest.md").read_text()
    assert markdown.startswith("# realtimekit_async benchmarks")
    tables = [line for line in markdown.splitlines() if line.startswith("|")]
    for key, clients in EXPECTED.items():
        title = document["workloads"][key]["title"]
        assert f"## {title}" in markdown
        for client in clients:
            label = document["workloads"][key]["clients"][client]["label"]
            assert any(line.startswith(f"| {label} |") for line in tables), (key, label)
    assert "## Targets" in markdown
