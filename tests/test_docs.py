"""The README and the docs site say what the code does (the snippets run in test_readme)."""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import realtimekit_async
import realtimekit_async.emulator
import realtimekit_async.emulator.pytest_plugin
import realtimekit_async.export
import realtimekit_async.testing
import realtimekit_async.webhooks
from realtimekit_async._cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PUBLIC: list[ModuleType] = [
    realtimekit_async,
    realtimekit_async.webhooks,
    realtimekit_async.export,
    realtimekit_async.testing,
    realtimekit_async.emulator,
    realtimekit_async.emulator.pytest_plugin,
]


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_every_public_class_and_function_has_its_own_docstring(module: ModuleType) -> None:
    assert module.__doc__
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            doc = obj.__dict__.get("__doc__")
        elif inspect.isfunction(obj):
            doc = obj.__doc__
        else:
            continue
        if not doc or not doc.strip():
            missing.append(name)
    assert missing == []


def test_the_readme_is_what_a_newcomer_reads_first() -> None:
    headings = re.findall(r"^## (.+)$", README, flags=re.MULTILINE)
    assert headings[:3] == ["Install", "Credentials", "Quickstart"]
    assert "$ make demo" in README
    assert "$ make test" in README
    for variable in (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
        "REALTIMEKIT_APP_ID",
        "REALTIMEKIT_BASE_URL",
    ):
        assert f"| `{variable}` |" in README
    assert "**Realtime** or **Realtime Admin**" in README
    assert "$ pip install 'realtimekit_async[cli] @ git+" in README
    assert not re.search(r"\bissues?\b", README, flags=re.IGNORECASE)


def test_the_readmes_links_lead_somewhere() -> None:
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if "://" not in t]
    assert local
    assert [t for t in local if not (ROOT / t).exists()] == []


def _flags(parser: argparse.ArgumentParser, prog: str = "") -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_flags(sub, f"{prog} {name}".strip()))
        elif action.option_strings and action.dest not in ("help", "version"):
            found.setdefault(prog, set()).add(max(action.option_strings, key=len))
    return found


def test_the_cli_guide_lists_every_flag() -> None:
    guide = (ROOT / "docs" / "guides" / "cli.md").read_text()
    shown = set(re.findall(r"`(--[a-z-]+)", guide))
    commands = _flags(build_parser())
    assert {
        "recordings list",
        "recordings wait",
        "recordings start-track",
        "export",
        "emulator",
    } <= set(commands)
    missing = {f"{cmd} {flag}" for cmd, flags in commands.items() for flag in flags - shown}
    assert missing == set()
