"""The book's results tables: HTML in a notebook, aligned text when printed."""

import pytest

from zsrl.plots import Table


def test_a_table_is_html_in_a_notebook_and_aligned_text_when_printed():
    table = Table(["method", "IQM"], [("FB", "12 [3, 40]"), ("VC-FB <b>", 7)], note="a & b")
    page = table._repr_html_()
    assert page.count("<tr>") == 3 and "<th>method</th>" in page and "<td>7</td>" in page
    assert "VC-FB &lt;b&gt;" in page and "<p>a &amp; b</p>" in page  # escaped
    assert str(table).splitlines() == [
        "method     IQM",
        "FB         12 [3, 40]",
        "VC-FB <b>  7",
        "a & b",
    ]


def test_rows_may_be_a_generator():
    table = Table(("method", "IQM"), ((name, k) for k, name in enumerate(["FB", "VC-FB"])))
    assert str(table).splitlines()[1:] == ["FB      0", "VC-FB   1"]
    assert table._repr_html_().count("<tr>") == 3


def test_a_row_of_another_width_is_an_error():
    with pytest.raises(ValueError, match=r"a row has 1 cells, the header 2: \['FB'\]"):
        Table(["method", "IQM"], [("FB",)])
