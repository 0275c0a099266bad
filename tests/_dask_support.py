"""A worker plugin that kills its worker mid-shard, deterministically.

Imported by the Dask tests only (it needs ``distributed``). Workers unpickle the
plugin by reference, so this module must be importable on them: it is, as the
worker processes are spawned with the tests' ``sys.path``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class KillAfterStoring(WorkerPlugin):
    """SIGKILL the first worker that has stored ``files`` files (of any shard), once
    for the whole cluster: ``marker`` is created exclusively by the victim, so the
    worker the nanny starts in its place (and every other) is spared."""

    def __init__(self, marker: str, files: int = 2) -> None:
        self.marker = marker
        self.files = files

    def setup(self, worker: Any) -> None:
        from realtimekit_async._export_store import ObjectTarget

        original = ObjectTarget.record
        stored = 0
        plugin = self

        async def record(target: ObjectTarget, entry: Any) -> None:
            nonlocal stored
            await original(target, entry)
            stored += 1
            if stored == plugin.files and _claim(plugin.marker):
                # The file is in the bucket but its manifest entry only in memory:
                # the rerun must find it by its object's metadata.
                os.kill(os.getpid(), signal.SIGKILL)

        ObjectTarget.record = record  # type: ignore[method-assign, assignment]


def _claim(path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True
