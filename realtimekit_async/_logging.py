"""The ``realtimekit_async`` logger, and ``REALTIMEKIT_LOG`` to switch it on without code.

Records about API attempts carry structured fields (``extra=``): ``method``,
``path`` (never a query), ``status`` (``None`` without an answer), ``attempt``,
``elapsed`` (seconds) and ``request_id`` (``cf-ray``), plus ``delay`` on
retries, so JSON formatters pick them up as they are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Final

__all__ = ["ENV_LOG", "configure_from_env", "logger"]

logger: Final = logging.getLogger("realtimekit_async")

ENV_LOG: Final = "REALTIMEKIT_LOG"
_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _EnvHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """The handler ``REALTIMEKIT_LOG`` adds; its type tells it apart so it is added once."""


def configure_from_env(env: Mapping[str, str] = os.environ) -> None:
    """Apply ``REALTIMEKIT_LOG`` (``debug``, ``info`` or ``warning``) to the SDK's logger.

    Sets the level and adds one stderr handler, unless the application already
    gave the logger (or the root logger) a handler of its own; called at import
    and on every client creation, it never adds a second one. An unknown value
    is reported as a warning on the logger and otherwise ignored.
    """
    raw = env.get(ENV_LOG, "").strip().lower()
    if not raw:
        return
    level = _LEVELS.get(raw)
    if level is None:
        logger.warning("%s=%r ignored: use debug, info or warning", ENV_LOG, raw)
        return
    logger.setLevel(level)
    if logger.handlers or logging.getLogger().handlers:
        return  # the application configured logging; records propagate to its handlers
    handler = _EnvHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)


configure_from_env()  # at import: REALTIMEKIT_LOG works before any client exists
