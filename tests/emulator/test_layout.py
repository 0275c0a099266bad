"""The emulator's shape: a small public surface, acyclic layers, no code shared with the SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import realtimekit_async.emulator as emulator

PACKAGE = Path(emulator.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each emulator module's imports: ``.x`` for siblings, dotted names for the rest."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                found.add("." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[path.stem] = found
    return graph


def test_public_names_are_what_users_need() -> None:
    assert emulator.__all__ == sorted(emulator.__all__)
    assert set(emulator.__all__) == {
        "CLOUDFLARE_GLOBAL_RATE_LIMIT",
        "CLOUDFLARE_RATE_LIMITS",
        "DEFAULT_ACCOUNT_ID",
        "DEFAULT_APP_ID",
        "DEFAULT_TOKEN",
        "DEFAULT_WEBHOOK_STATUSES",
        "EmulatedClock",
        "Emulator",
        "EmulatorStats",
        "FAULT_KINDS",
        "FaultConfig",
        "RateLimitRule",
        "StorageRequest",
        "WebhookDelivery",
        "WebhookFaults",
        "WindowRecord",
        "expected_file_bytes",
        "expected_file_sha256",
        "iter_file_bytes",
        "serve",
        "verify_webhook_signature",
    }
    for name in emulator.__all__:
        assert hasattr(emulator, name), name


def test_the_emulator_shares_no_code_with_the_sdk() -> None:
    # An independent oracle: importing the SDK would let one bug hide on both sides.
    sdk = {
        (module, name)
        for module, names in _imports().items()
        for name in names
        if name.startswith(("realtimekit_async", ".."))
    }
    assert sdk == set()


def test_the_modules_import_each_other_without_a_cycle() -> None:
    graph = {
        module: {name[1:] for name in names if name.startswith(".") and name[1:] in _imports()}
        for module, names in _imports().items()
    }
    cycles: list[list[str]] = []
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for imported in sorted(graph[module]):
            walk(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])
    assert cycles == []
