"""How the command line says things (kernel_runtime/cli/format.py): problem lines, tables, -p values."""

from __future__ import annotations

import pytest
from rich.console import Console

from kernel_runtime.cli.format import detail_lines, parameter_value, product_lines, products_table, runs_table

RUN = {
    "run_id": "0123456789abcdef0123456789abcdef",
    "version": 12,
    "status": "succeeded",
    "duration_ms": 5.25,
    "trigger": {"kind": "schedule"},
    "started_at": "2026-11-25T19:08:11.123Z",
}


def render(table, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(table)
    return console.export_text()


def test_problems_are_sorted_by_cell_numbered_from_1_and_never_repeat_the_cell():
    details = [
        {"cell": 4, "message": "Cell 5 has a syntax error on line 1: invalid syntax."},
        {"cell": 0, "message": "Parameter 'x': default 'foo' is not a literal value."},
        {"cell": None, "message": "No cell is tagged 'output': tag the cell whose last expression is the result."},
        {"cell": 2, "message": "Cells 2, 3 are all tagged 'output': exactly one may be."},
        {"cell": 1, "message": "The output cell (cell 2) must end with an expression: its value is the result."},
    ]
    assert detail_lines(details) == [
        "No cell is tagged 'output': tag the cell whose last expression is the result.",
        "cell 1: Parameter 'x': default 'foo' is not a literal value.",
        "The output cell (cell 2) must end with an expression: its value is the result.",
        "Cells 2, 3 are all tagged 'output': exactly one may be.",
        "Cell 5 has a syntax error on line 1: invalid syntax.",
    ]


def test_parameter_and_path_details_are_their_message():
    assert detail_lines([{"parameter": "n", "message": "Parameter 'n' must be int, got null."}]) == ["Parameter 'n' must be int, got null."]
    assert detail_lines([{"path": "/xs/0", "message": "NaN is not JSON."}]) == ["/xs/0: NaN is not JSON."]
    assert detail_lines(["plain text"]) == ["plain text"]


@pytest.mark.parametrize("width", [200, 80, 75])
def test_a_runs_table_never_cuts_an_id_or_a_date(width):
    text = render(runs_table([RUN], width), width)
    assert RUN["run_id"] in text and RUN["started_at"] in text, text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width


def column(text: str, index: int) -> str:
    """The text of a table's column ``index`` in its body rows, its folded lines joined."""
    rows = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    return "".join(row[index + 1].strip() for row in rows)


def test_a_table_narrower_than_its_id_and_date_folds_them_whole():
    text = render(runs_table([RUN], 50), 50)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 50
    assert column(text, 0) == RUN["run_id"]
    assert column(text, 2) == RUN["started_at"]


def test_a_narrow_runs_table_drops_optional_columns_first():
    wide, narrow = render(runs_table([RUN], 200), 200), render(runs_table([RUN], 80), 80)
    assert "schedule" in wide and "5.2" in wide
    assert "schedule" not in narrow and "succeeded" in narrow


def test_a_products_table_keeps_names_whole_and_folds_the_rest():
    product = {"name": "a-rather-long-product-name-for-a-table", "version": 3, "owner": "sales", "title": "A title " * 8,
               "parameters": {"region": {"type": "str", "default": "EU"}, "msg": {"type": "str", "nullable": True, "default": None}}}
    text = render(products_table([product], 60), 60)
    assert product["name"] in text and "…" not in text
    wide = render(products_table([product], 250), 250)
    assert "msg: str | None" in wide


@pytest.mark.parametrize(
    "spec, raw, value",
    [
        ({"type": "str"}, "2024", "2024"),
        ({"type": "str", "nullable": True}, "null", "null"),
        ({"type": "int"}, "5", 5),
        ({"type": "int", "nullable": True}, "null", None),
        ({"type": "list"}, '["a", 1]', ["a", 1]),
        ({"type": "any"}, '{"k": 1}', {"k": 1}),
        ({"type": "any"}, "EU", "EU"),
        ({"type": "any"}, "null", None),
        (None, "EU", "EU"),
    ],
)
def test_p_values_are_typed_by_the_parameter(spec, raw, value):
    assert parameter_value("x", raw, spec) == value


@pytest.mark.parametrize(
    "spec, raw, says",
    [
        ({"type": "list"}, "a", """Parameter 'x' is a list: pass it as JSON, like -p x '["a", "b"]' (got 'a')."""),
        ({"type": "dict"}, "k=v", """Parameter 'x' is a dict: pass it as JSON, like -p x '{"key": "value"}' (got 'k=v')."""),
        ({"type": "bool"}, "True", "Parameter 'x' is a bool: pass it as JSON, like -p x true (got 'True')."),
        ({"type": "int", "nullable": True}, "many", "Parameter 'x' is an int: pass it as JSON (or null), like -p x 3 (got 'many')."),
    ],
)
def test_text_for_a_json_typed_parameter_says_what_to_pass(spec, raw, says):
    with pytest.raises(ValueError) as info:
        parameter_value("x", raw, spec)
    assert str(info.value) == says


@pytest.mark.parametrize("version, path", [(3, "/api/products/sales/invoke"), (2, "/api/products/sales@2/invoke")])
def test_show_of_an_older_version_invokes_it_pinned(version, path):
    product = {"name": "sales", "version": version, "versions": [2, 3], "published_at": "2026-11-25T19:08:11.123Z",
               "invoke_url": "/api/products/sales/invoke", "parameters": {}}
    lines = product_lines(product, "http://127.0.0.1:8765")
    assert f"invoke: POST http://127.0.0.1:8765{path}" in lines


@pytest.mark.parametrize("kind", [None, "any"])
def test_p_values_that_json_has_no_word_for_are_text(kind):
    spec = {"type": kind} if kind else None
    assert parameter_value("x", "NaN", spec) == "NaN"
    assert parameter_value("x", "-Infinity", spec) == "-Infinity"
    assert parameter_value("x", '"\\ud800"', spec) == '"\\ud800"'  # a lone surrogate is no JSON text either


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "1e400"])
def test_a_float_parameter_refuses_what_json_has_no_number_for(raw):
    with pytest.raises(ValueError, match="Parameter 'x' is a float: pass it as JSON"):
        parameter_value("x", raw, {"type": "float"})


@pytest.mark.parametrize("key, raw", [("x", "caf\udce9"), ("\udcff", "1")])
def test_p_text_that_was_not_utf_8_is_refused(key, raw):
    with pytest.raises(ValueError, match="is not valid UTF-8 text"):
        parameter_value(key, raw, {"type": "str"})
