"""kernel_runtime.model.product and model.parameters: parameter inference, name rules, refs, parameter validation, output contracts."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import jsonschema
import nbformat
import pytest

from kernel_runtime.errors import InvalidNotebook, InvalidParameters, InvalidRequest
from kernel_runtime.model import parameters
from kernel_runtime.model.parameters import MAX_DEPTH, MAX_ITEMS, MAX_STRING, Parameter
from kernel_runtime.model.product import (
    check_name,
    contract_violation,
    load_spec,
    parse_ref,
    read_notebook,
    validate_parameters,
)
from kernel_runtime.triggers.rules import check_triggers
from tests.conftest import make_notebook


def notebook(cells: list[tuple[str, str]], **nbmesh: Any) -> nbformat.NotebookNode:
    """A notebook from (tag, source) pairs ("" untagged, "md" markdown), read as the runtime reads a body."""
    return read_notebook(json.dumps(make_notebook(cells, **nbmesh)))


def spec_with(parameters: str, **nbmesh: Any):
    return load_spec(notebook([("parameters", parameters), ("output", "1")], **nbmesh), "p")


def problems_of(nb: nbformat.NotebookNode, name: str | None = "p") -> list[dict[str, Any]]:
    with pytest.raises(InvalidNotebook) as info:
        load_spec(nb, name, check_triggers=check_triggers)  # the trigger rules, as the runtime's catalog passes them
    assert info.value.message == "The notebook is not a valid product."
    return info.value.details


def parameter_problems(source: str) -> list[str]:
    return [p["message"] for p in problems_of(notebook([("parameters", source), ("output", "1")]))]


# parameter inference --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line, expected",
    [
        ("x = 3", Parameter("x", "int", 3)),
        ("x = -3", Parameter("x", "int", -3)),
        ("x = 2.5", Parameter("x", "float", 2.5)),
        ("x = 'EU'", Parameter("x", "str", "EU")),
        ('x = """a\\nb"""', Parameter("x", "str", "a\nb")),
        ("x = True", Parameter("x", "bool", True)),
        ("x = [1, 'a']", Parameter("x", "list", [1, "a"])),
        ("x = {'a': [1]}", Parameter("x", "dict", {"a": [1]})),
        ("x: int = 3", Parameter("x", "int", 3)),
        ("x: float = 3", Parameter("x", "float", 3.0)),  # an int default of a float is a float
        ("x: int = 1.0", Parameter("x", "int", 1)),  # a number without a fraction is an int, as at invocation
        ("x: str = 'a'", Parameter("x", "str", "a")),
        ("x: bool = False", Parameter("x", "bool", False)),
        ("x: list = []", Parameter("x", "list", [])),
        ("x: dict = {}", Parameter("x", "dict", {})),
        ("x: List[str] = ['a']", Parameter("x", "list", ["a"])),
        ("x: list[int] = [1]", Parameter("x", "list", [1])),
        ("x: Dict[str, int] = {}", Parameter("x", "dict", {})),
        ("x = 3  # how many rows", Parameter("x", "int", 3, "how many rows")),
        ("x: str = 'EU'  # the sales region", Parameter("x", "str", "EU", "the sales region")),
        ("x = 1  # a # b", Parameter("x", "int", 1, "a # b")),
        ("x = 'a=b'", Parameter("x", "str", "a=b")),  # a second '=' on the line
        ("x = [\n    1,\n    2,\n]", Parameter("x", "list", [1, 2])),
    ],
)
def test_a_parameter_is_read_from_its_assignment(line, expected):
    params = spec_with(line).parameters
    assert params == {"x": expected}
    assert type(params["x"].default) is type(expected.default)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("color = '#ff0000'", Parameter("color", "str", "#ff0000")),
        ("color: str = '#ff0000'  # a colour", Parameter("color", "str", "#ff0000", "a colour")),
        ("query = 'a # b'", Parameter("query", "str", "a # b")),
        ("note = '''a\n# b'''  # c", Parameter("note", "str", "a\n# b", "c")),
    ],
)
def test_a_string_default_may_hold_a_hash(line, expected):
    assert spec_with(line).parameters == {expected.name: expected}


@pytest.mark.parametrize("annotation", ["typing.List[int]", "typing.List", "'List[int]'"])
def test_a_typing_qualified_annotation_is_read(annotation):
    assert spec_with(f"x: {annotation} = []").parameters == {"x": Parameter("x", "list", [])}


def test_parameters_keep_the_order_of_the_cell_and_their_json_forms():
    spec = spec_with("region: str = 'EU'  # the sales region\nlimit = 10\nratio: float = 1\n")
    assert list(spec.parameters) == ["region", "limit", "ratio"]
    assert spec.parameters_json() == {
        "region": {"type": "str", "default": "EU", "help": "the sales region"},
        "limit": {"type": "int", "default": 10},
        "ratio": {"type": "float", "default": 1.0},
    }
    # The schema the runtime enforces, with the bounds JSON Schema can state at the top level.
    assert spec.parameters_schema() == {
        "type": "object",
        "properties": {
            "region": {"type": "string", "maxLength": MAX_STRING, "default": "EU", "description": "the sales region"},
            "limit": {"type": "integer", "default": 10},
            "ratio": {"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max, "default": 1.0},
        },
        "additionalProperties": False,
    }


def test_a_notebook_without_parameters_cell_has_no_parameters():
    assert load_spec(notebook([("output", "1")]), "p").parameters == {}


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("x = foo", "default 'foo' is not a literal value"),
        ("x = len('a')", "is not a literal value"),
        ("x: set = {1}", "its default holds a set, which is not a JSON value"),
        ("x = {[1]: 2}", "default '{[1]: 2}' cannot be evaluated (TypeError"),
        ("x: tuple = ()", "type 'tuple' is not one of int, float, str, bool, list, dict, any"),
        ("x: int | str = 1", "type 'int | str' is not one of"),
        ("x: int = 'a'", "default 'a' is not an int"),
        ("x: int = 1.5", "default 1.5 is not an int"),
        ("x: int = True", "default True is not an int"),
        ("x: float = True", "default True is not a float"),
        ("x: bool = 1", "default 1 is not a bool"),
        ("x: Optional[int] = 'a'", "default 'a' is not an int or null"),
        ("x = (1, 2)", "cannot infer a type from default"),
        ("import os", "Line 1 of the parameters cell is not a plain assignment"),
        ("from typing import Optional", "like `x: int = 3` or `x = 3`. Imports belong in a setup cell."),
        ("x, y = 1, 2", "Line 1 of the parameters cell is not a plain assignment"),
        ("x = y = 1", "Line 1 of the parameters cell is not a plain assignment"),
        ("a = 1\nx += 1", "Line 2 of the parameters cell is not a plain assignment"),
        ("x: int", "Line 1 of the parameters cell is not a plain assignment"),
        ("x = (", "The parameters cell (cell 1) cannot be parsed"),
    ],
)
def test_a_parameter_that_cannot_be_read_is_a_problem_of_the_parameters_cell(line, fragment):
    details = problems_of(notebook([("parameters", line), ("output", "1")]))
    assert any(fragment in d["message"] for d in details), details
    assert {d["cell"] for d in details} == {0}


@pytest.mark.parametrize("line", ["x = foo", "x = len('a')", "x: set = {1}", "x: tuple = ()", "x: int = 'a'", "x: bool = 1", "x: str | None = 1"])
def test_a_parameter_read_but_refused_is_one_problem_with_its_reason(line):
    found = parameter_problems(line)
    assert len(found) == 1 and found[0].startswith("Parameter 'x': "), found


# notebook rules --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cells, fragment, cell",
    [
        ([("", "x = 1")], "No cell is tagged 'output'", None),
        ([("output", "1"), ("output", "2")], "Cells 1, 2 are all tagged 'output'", 1),
        ([("output", "x = 1")], "The output cell (cell 1) must end with an expression", 0),
        ([("output", "1"), ("", "def f(:")], "Cell 2 has a syntax error on line 1", 1),
        ([("parameters", "x = 1"), ("parameters", "y = 2"), ("output", "1")], "Cell 2 is a second 'parameters' cell", 1),
    ],
)
def test_cell_role_problems_name_their_cell(cells, fragment, cell):
    matching = [d for d in problems_of(notebook(cells)) if fragment in d["message"]]
    assert len(matching) == 1
    assert matching[0]["cell"] == cell


def test_a_tagged_markdown_cell_is_a_problem_and_an_untagged_one_is_not():
    assert load_spec(notebook([("md", "# title"), ("output", "1")]), "p").run_cells[-1].role == "output"
    nb = notebook([("output", "1")])
    nb.cells.append(nbformat.v4.new_markdown_cell("text", metadata={"tags": ["setup"]}))
    assert problems_of(nb) == [{"cell": 1, "message": "Cell 2 is tagged 'setup' but is not a code cell."}]


def test_cells_are_split_into_setup_and_run_cells_in_notebook_order():
    spec = load_spec(
        notebook([("setup", "import math"), ("md", "text"), ("parameters", "x = 1"), ("", "y = x * 2"), ("output", "y"), ("setup", "k = 1")]),
        "p",
    )
    assert [(c.index, c.role) for c in spec.setup_cells] == [(0, "setup"), (5, "setup")]
    assert [(c.index, c.role) for c in spec.run_cells] == [(2, "parameters"), (3, "body"), (4, "output")]


def test_ipython_syntax_is_not_a_syntax_error():
    spec = load_spec(notebook([("", "%time x = 1\n!echo hi"), ("output", "1")]), "p")
    assert spec.run_cells[0].source == "%time x = 1\n!echo hi"


@pytest.mark.parametrize(
    "meta, fragment",
    [
        ({"timeout": 0}, "timeout must be a number of seconds in (0, 86400]"),
        ({"timeout": 86401}, "timeout must be a number of seconds in (0, 86400]"),
        ({"timeout": True}, "timeout must be a number of seconds"),
        ({"timeout": "60"}, "timeout must be a number of seconds"),
        ({"title": 3}, "metadata.nbmesh.title must be a string"),
        ({"owner": ["a"]}, "metadata.nbmesh.owner must be a string"),
        ({"output_schema": {"type": "nonsense"}}, "output_schema is not a valid JSON Schema"),
        ({"triggers": [{"event": "BAD"}]}, "Trigger 0: topic 'BAD' must match"),
    ],
)
def test_bad_settings_are_problems(meta, fragment):
    details = problems_of(notebook([("output", "1")], **meta))
    assert len([d for d in details if fragment in d["message"]]) == 1, details


def test_settings_are_read():
    spec = load_spec(notebook([("output", "1")], title="T", description="D", owner="sales", timeout=5), "p")
    assert (spec.title, spec.description, spec.owner, spec.timeout) == ("T", "D", "sales", 5.0)
    assert type(spec.timeout) is float


def test_every_problem_is_listed_at_once():
    nb = notebook([("parameters", "x = foo"), ("", "def f(:")], timeout=-1, triggers=[{"event": "BAD"}])
    messages = [d["message"] for d in problems_of(nb)]
    for fragment in ("not a literal value", "No cell is tagged 'output'", "syntax error", "timeout", "Trigger 0"):
        assert any(fragment in m for m in messages), (fragment, messages)


# names ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "0", "sales-summary", "a-b-c", "x" * 63, "9lives", "a-"])
def test_valid_product_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "A", "Sales", "a_b", "a.b", "a b", "a/b", "x" * 64, "ä", 3, None])
def test_invalid_product_names(name):
    with pytest.raises(InvalidRequest, match="Invalid product name"):
        check_name(name)



def test_a_name_with_a_trailing_newline_is_invalid():
    with pytest.raises(InvalidRequest):
        check_name("sales\n")


def test_a_notebook_name_with_a_trailing_newline_is_a_problem():
    with pytest.raises(InvalidNotebook):
        load_spec(notebook([("output", "1")], name="sales\n"))


@pytest.mark.parametrize(
    "meta_name, url_name, final",
    [("sales", None, "sales"), (None, "sales", "sales"), ("sales", "sales", "sales")],
)
def test_the_product_name_comes_from_the_url_or_the_metadata(meta_name, url_name, final):
    meta = {"name": meta_name} if meta_name is not None else {}
    assert load_spec(notebook([("output", "1")], **meta), url_name).name == final


@pytest.mark.parametrize(
    "meta_name, url_name, fragment",
    [
        ("sales", "other", "metadata.nbmesh.name is 'sales' but the product is published as 'other'"),
        ("Sales", None, "metadata.nbmesh.name 'Sales' is not a valid product name"),
        (3, "sales", "metadata.nbmesh.name 3 is not a valid product name"),
        (None, None, "Product name '' must match"),
        (None, "Bad_Name", "Product name 'Bad_Name' must match"),
    ],
)
def test_a_missing_bad_or_disagreeing_name_is_a_problem(meta_name, url_name, fragment):
    meta = {"name": meta_name} if meta_name is not None else {}
    details = problems_of(notebook([("output", "1")], **meta), url_name)
    assert len([d for d in details if fragment in d["message"]]) == 1, details


@pytest.mark.parametrize(
    "ref, parsed",
    [("sales", ("sales", None)), ("sales@1", ("sales", 1)), ("sales@42", ("sales", 42))],
)
def test_parse_ref(ref, parsed):
    assert parse_ref(ref) == parsed


@pytest.mark.parametrize("ref", ["sales@0", "sales@-1", "sales@x", "sales@", "sales@1.5", "sales@ 1", "sales@1@2", "sales@1e3", "sales@007", "sales@1\n"])
def test_parse_ref_rejects_a_bad_version(ref):
    with pytest.raises(InvalidRequest, match="a version is a positive integer"):
        parse_ref(ref)


@pytest.mark.parametrize("ref", ["Sales@1", "@1", "", "a_b@2"])
def test_parse_ref_rejects_a_bad_name(ref):
    with pytest.raises(InvalidRequest, match="Invalid product name"):
        parse_ref(ref)


@pytest.mark.parametrize("ref", ["sales@²", "sales@١"])
def test_parse_ref_rejects_non_ascii_digits(ref):
    with pytest.raises(InvalidRequest):
        parse_ref(ref)


# validate_parameters ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec():
    return spec_with("n: int = 1\nratio: float = 0.5\nflag: bool = False\nname: str = 'x'\nitems: list = []\nopts: dict = {}\n")


DEFAULTS = {"n": 1, "ratio": 0.5, "flag": False, "name": "x", "items": [], "opts": {}}


@pytest.mark.parametrize(
    "values, changed",
    [
        ({}, {}),
        ({"n": 5}, {"n": 5}),
        ({"n": -(2**80)}, {"n": -(2**80)}),
        ({"ratio": 2}, {"ratio": 2.0}),  # an int for a float is fine and becomes a float
        ({"n": 1.0}, {"n": 1}),  # JSON Schema's integer: a number without a fraction, and it becomes an int
        ({"n": 1e3}, {"n": 1000}),
        ({"ratio": 2**1000}, {"ratio": float(2**1000)}),
        ({"ratio": 1e-300}, {"ratio": 1e-300}),
        ({"flag": True}, {"flag": True}),
        ({"name": ""}, {"name": ""}),
        ({"items": [1, "a", None, {"b": [True]}]}, {"items": [1, "a", None, {"b": [True]}]}),
        ({"opts": {"k": {"nested": [1]}}}, {"opts": {"k": {"nested": [1]}}}),
    ],
)
def test_valid_values_overlay_the_defaults(spec, values, changed):
    resolved = validate_parameters(spec, values)
    assert resolved == {**DEFAULTS, **changed}
    assert type(resolved["ratio"]) is float and type(resolved["n"]) is int


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("n", True, "Parameter 'n' must be int, got bool true."),
        ("n", 1.5, "Parameter 'n' must be int, got float 1.5."),
        ("ratio", 2**1024, "Parameter 'ratio' must be float, got int 1797693134862315907729305190789024733...."),
        ("n", "1", "Parameter 'n' must be int, got str \"1\"."),
        ("n", None, "Parameter 'n' must be int, got null."),
        ("ratio", False, "Parameter 'ratio' must be float, got bool false."),
        ("ratio", float("nan"), "Parameter 'ratio' must be float, got float NaN."),
        ("ratio", float("inf"), "Parameter 'ratio' must be float, got float Infinity."),
        ("flag", 1, "Parameter 'flag' must be bool, got int 1."),
        ("flag", "true", "Parameter 'flag' must be bool, got str \"true\"."),
        ("name", ["x"], "Parameter 'name' must be str, got list [\"x\"]."),
        ("items", {}, "Parameter 'items' must be list, got dict {}."),
        ("opts", [], "Parameter 'opts' must be dict, got list []."),
        ("name", 12345678901234567890123456789012345678901234567890, "got int 1234567890123456789012345678901234567...."),
    ],
)
def test_a_value_of_the_wrong_type_is_a_problem_naming_it(spec, key, value, message):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, {key: value})
    assert info.value.message == "Invalid parameters for product 'p'."
    assert len(info.value.details) == 1
    assert info.value.details[0]["parameter"] == key
    assert info.value.details[0]["message"].endswith(message)


def test_an_unknown_parameter_names_the_known_ones(spec):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, {"nope": 1})
    assert info.value.details == [
        {"parameter": "nope", "message": "Unknown parameter 'nope'; known parameters: n, ratio, flag, name, items, opts."}
    ]


def test_every_bad_value_is_listed(spec):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, {"n": "x", "zzz": 1, "flag": 0, "name": "fine"})
    assert [d["parameter"] for d in info.value.details] == ["n", "zzz", "flag"]


@pytest.mark.parametrize("values", [[], "n=1", 3, None, True])
def test_parameters_must_be_an_object(spec, values):
    with pytest.raises(InvalidParameters, match=f"Parameters must be a JSON object, got {type(values).__name__}."):
        validate_parameters(spec, values)


def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "key, value",
    [("name", "x" * MAX_STRING), ("items", [0] * MAX_ITEMS), ("items", deep(MAX_DEPTH)), ("opts", {"k" * MAX_STRING: 1})],
)
def test_values_at_the_bounds_are_accepted(spec, key, value):
    assert validate_parameters(spec, {key: value})[key] == value


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("name", "x" * (MAX_STRING + 1), f"holds a string of {MAX_STRING + 1} characters; the limit is {MAX_STRING}"),
        ("items", ["x" * (MAX_STRING + 1)], "holds a string of"),
        ("opts", {"k" * (MAX_STRING + 1): 1}, "holds a string of"),  # keys count too
        ("items", [0] * (MAX_ITEMS + 1), f"holds a list of {MAX_ITEMS + 1} items; the limit is {MAX_ITEMS}"),
        ("opts", {str(i): i for i in range(MAX_ITEMS + 1)}, f"holds a dict of {MAX_ITEMS + 1} items"),
        ("items", deep(MAX_DEPTH + 1), f"is nested deeper than {MAX_DEPTH} levels"),
        ("items", deep(100_000), f"is nested deeper than {MAX_DEPTH} levels"),
    ],
)
def test_values_past_the_bounds_are_refused(spec, key, value, fragment):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, {key: value})
    assert [d["parameter"] for d in info.value.details] == [key]
    assert fragment in info.value.details[0]["message"]


JSON_VALUES = [0, 1, -(2**80), 1.0, 1e3, 1.5, 2**1024, True, None, "", "1", "x" * (MAX_STRING + 1), [], [0] * (MAX_ITEMS + 1), {}, {"a": [1]}]


@pytest.mark.parametrize("key", [*DEFAULTS, "unknown"])
def test_the_published_schema_is_the_rule_enforced(spec, key):
    """Any JSON Schema 2020-12 validator given the published schema answers as the runtime does."""
    published = jsonschema.Draft202012Validator(spec.parameters_schema())
    for value in JSON_VALUES:
        try:
            validate_parameters(spec, {key: value})
            accepted = True
        except InvalidParameters:
            accepted = False
        assert published.is_valid({key: value}) is accepted, (key, value)


def test_the_schema_is_compiled_once_per_version_not_per_request(spec, monkeypatch):
    compiled = []
    real = parameters._Validator
    monkeypatch.setattr(parameters, "_Validator", lambda schema: compiled.append(schema) or real(schema))
    for values in ({}, {"n": 2}, {"n": "x"}):
        with contextlib.suppress(InvalidParameters):
            validate_parameters(spec, values)
    assert compiled == []
    spec_with("n: int = 1")
    assert len(compiled) == 1


# contract_violation ---------------------------------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "required": ["rows"],
    "properties": {"rows": {"type": "array", "items": {"type": "object", "properties": {"total": {"type": "number"}}}}},
}


@pytest.fixture(scope="module")
def contracted():
    return load_spec(notebook([("output", "1")], output_schema=SCHEMA), "p")


@pytest.mark.parametrize("result", [{"rows": []}, {"rows": [{"total": 1.5}, {"total": 2}], "extra": 1}])
def test_a_result_that_meets_the_schema_has_no_violation(contracted, result):
    assert contract_violation(contracted, result) is None


@pytest.mark.parametrize(
    "result, message",
    [
        ({}, "'rows' is a required property"),
        ([], "[] is not of type 'object'"),
        ({"rows": 3}, "3 is not of type 'array' (at /rows)"),
        ({"rows": [{"total": 1}, {"total": "x"}]}, "'x' is not of type 'number' (at /rows/1/total)"),
    ],
)
def test_a_result_that_breaks_the_schema_is_described_with_its_path(contracted, result, message):
    assert contract_violation(contracted, result) == message


@pytest.mark.parametrize("result", [None, {"anything": object()}, [1, 2]])
def test_without_an_output_schema_nothing_is_a_violation(result):
    assert contract_violation(load_spec(notebook([("output", "1")]), "p"), result) is None
