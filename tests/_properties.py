"""Hypothesis settings shared by the property tests: no deadline (the machine is shared),
fewer examples where each one runs an event loop."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ASYNC = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
