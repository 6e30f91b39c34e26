"""The README's coverage table is the one the registries generate (issue 11)."""

from __future__ import annotations

import re
from pathlib import Path

from circuits import PRIMITIVES
from sim.characterize.coverage import NO, coverage_rows, coverage_table

README = Path(__file__).resolve().parents[2] / "README.md"
ISSUE_11_KINDS = ("opamp.max", "opamp.softmax", "opamp.matmul", "current.wta", "current.average", "current.junction",
                  "current.softmax")


def test_readme_table_matches_the_registries():
    text = README.read_text()
    found = re.search(r"<!-- coverage:begin -->\n(.*?)\n<!-- coverage:end -->", text, re.DOTALL)
    assert found, "README.md lacks the coverage table markers"
    assert found.group(1).strip() == coverage_table(), \
        "README coverage table is stale: paste sim.characterize.coverage.coverage_table() between the markers"


def test_every_primitive_has_a_row_and_the_new_blocks_are_complete():
    rows = {r[0].strip("`"): r for r in coverage_rows()}
    assert set(rows) == set(PRIMITIVES)
    for kind in ISSUE_11_KINDS:
        assert NO not in rows[kind], rows[kind]
