"""docs/configuration.md's table documents every setting once, and nothing that is not one."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from herald_server.config import _ENV

CONFIGURATION = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_has_exactly_one_row_in_the_configuration_table() -> None:
    text = CONFIGURATION.read_text()
    table = text[text.index("## Every setting") : text.index("## Settings from files")]
    rows = Counter(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))

    assert sorted(rows) == sorted(_ENV), "docs/configuration.md rows and settings differ"
    assert [name for name, count in rows.items() if count > 1] == []
