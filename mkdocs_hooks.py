"""MkDocs hooks for the documentation site (see ``hooks:`` in mkdocs.yml)."""

from __future__ import annotations

import re
from typing import Any

# Docstrings cross-reference with Sphinx roles (:class:`Recording`); Markdown renders the
# backquoted part as code and leaves the role's name in front of it.
_ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj):(?=<code>)")


def on_page_content(html: str, **_kwargs: Any) -> str:
    """Drop the names of Sphinx roles left in front of rendered ``<code>`` spans."""
    return _ROLE.sub("", html)
