"""docs/security.md "Input limits" shows the limits the code enforces (cxbot.limits.TABLE)."""

from __future__ import annotations

from cxbot.limits import TABLE
from tests.conftest import ROOT


def test_the_documented_table_is_the_one_in_the_code() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    documented = text.split("<!-- limits table: begin -->\n", 1)[1].split("<!-- limits table: end -->", 1)[0]
    rows = ["| What | Limit | Refused with |", "|---|---|---|"]
    rows += [f"| {limit.what} | {limit.bound} | {limit.where} |" for limit in TABLE]
    assert documented.strip().splitlines() == rows
