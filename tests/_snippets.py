"""The Python snippets of the README and the docs (run by test_readme and test_pytest_plugin)."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- snippet: (?P<kind>\w+) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


@attrs.frozen
class Snippet:
    page: Path
    line: int
    code: str
    kind: str  # "script" or "pytest"

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(kind: str | None = None) -> list[Snippet]:
    """The Python blocks of the README and the docs, in page order."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            found.append(Snippet(page, line, match["code"], match["kind"] or "script"))
    return [s for s in found if kind is None or s.kind == kind]
