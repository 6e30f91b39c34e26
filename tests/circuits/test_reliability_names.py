"""Issue 12, long names: the one sanitizer keeps distinct names distinct after truncation."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.spice.netlist import MAX_NAME, NameTable, spice_name

PREFIX = "serving_default_dense_input_" + "x" * 30


@given(st.text(min_size=0, max_size=120))
@settings(max_examples=200, deadline=None)
def test_every_name_is_a_bounded_identifier(text):
    name = spice_name(text)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
    assert len(name) <= MAX_NAME


@given(st.lists(st.text(alphabet="ab_.é", min_size=40, max_size=90), min_size=2, max_size=8, unique=True))
@settings(max_examples=100, deadline=None)
def test_long_names_that_share_a_prefix_stay_distinct(suffixes):
    names = [spice_name(PREFIX + s) for s in suffixes]
    cleaned = {re.sub(r"[^a-z0-9_]", "_", (PREFIX + s).lower()) for s in suffixes}
    assert len(set(names)) == len(cleaned)  # only what sanitizing itself merges may merge


def test_truncated_names_differ_and_short_names_are_unchanged():
    a, b = spice_name(f"in_{PREFIX}_a_0"), spice_name(f"in_{PREFIX}_b_0")
    assert a != b and len(a) == len(b) == MAX_NAME
    assert spice_name("in_x_0") == "in_x_0"


@given(st.lists(st.text(max_size=80), min_size=1, max_size=12))
@settings(max_examples=100, deadline=None)
def test_name_table_gives_distinct_names_to_distinct_sources(sources):
    table = NameTable("p")
    names = {s: table(s) for s in sources}
    assert len(set(names.values())) == len(names)
    assert all(table(s) == n for s, n in names.items())  # stable
