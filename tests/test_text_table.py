"""sfc_hls.text_table: the one table formatter."""

import pytest

from sfc_hls.text_table import format_table


def test_text_table_aligns_and_rules():
    text = format_table(["name", "n"], [["a", "1"], ["bbb", "22"], ["total", "23"]],
                        align="lr", rules=[2])  # fmt: skip
    assert text.splitlines() == ["name    n", "-----  --", "a       1", "bbb    22",
                                 "-----  --", "total  23"]  # fmt: skip


def test_markdown_table():
    text = format_table(["name", "n"], [["a", "1"]], align="lr", markdown=True)
    assert text.splitlines() == ["| name | n |", "|---|---:|", "| a | 1 |"]


def test_bad_tables_name_the_problem():
    with pytest.raises(ValueError, match="align must have one of"):
        format_table(["a", "b"], [], align="l")
    with pytest.raises(ValueError, match="row 0 has 1 cells, the header 2"):
        format_table(["a", "b"], [["x"]])
