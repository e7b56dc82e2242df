"""Empty parameters (docs/reference/notebook-format.md, "Parameters"): papermill's `x = None` is `any`,
`x: str | None = None` and its spellings are a nullable `str`, and null is accepted only for these."""

from __future__ import annotations

import jsonschema
import nbformat
import pytest

from kernel_runtime.errors import InvalidNotebook, InvalidParameters
from kernel_runtime.model.parameters import Parameter
from kernel_runtime.model.product import load_spec, validate_parameters
from kernel_runtime.triggers.rules import check_triggers
from tests.conftest import make_notebook

NULLABLE_STR = {"type": "str", "nullable": True, "default": None}


def spec_with(source: str, **meta):
    return load_spec(nbformat.from_dict(make_notebook([("parameters", source), ("output", "1")], **meta)), "p")


@pytest.mark.parametrize(
    "line",
    [
        "x: str | None = None",
        "x: None | str = None",
        "x: Optional[str] = None",
        "x: typing.Optional[str] = None",
        "x: Union[str, None] = None",
        "x: 'Optional[str]' = None",
        "x: str = None",
        "x = None  # type: Optional[str]",
    ],
)
def test_every_spelling_of_an_optional_str_is_a_nullable_str(line):
    assert spec_with(line).parameters_json() == {"x": NULLABLE_STR}


@pytest.mark.parametrize(
    "line, expected",
    [
        ("x = None", {"type": "any", "default": None}),
        ("x = None  # anything", {"type": "any", "default": None, "help": "anything"}),
        ("x: Any = 3", {"type": "any", "default": 3}),
        ("x: typing.Any = [1]", {"type": "any", "default": [1]}),
        ("x: Optional[int] = 3", {"type": "int", "nullable": True, "default": 3}),
        ("x: float | None = 2", {"type": "float", "nullable": True, "default": 2.0}),
        ("x: Optional[List[str]] = None", {"type": "list", "nullable": True, "default": None}),
        ("x: dict = None", {"type": "dict", "nullable": True, "default": None}),
        ("x: str = 'a'", {"type": "str", "default": "a"}),  # not nullable: no None in sight
    ],
)
def test_any_and_other_nullable_types(line, expected):
    assert spec_with(line).parameters_json() == {"x": expected}


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("x: int | str = 1", "type 'int | str' is not one of int, float, str, bool, list, dict, any"),
        ("x: Union[int, str, None] = 1", "is not one of"),
        ("x: None = None", "type 'None' is not one of"),
        ("x: Optional[int] = 'a'", "default 'a' is not an int or null"),
    ],
)
def test_unions_that_are_not_t_or_none_are_refused(line, fragment):
    with pytest.raises(InvalidNotebook) as info:
        spec_with(line)
    assert any(fragment in d["message"] for d in info.value.details), info.value.details


@pytest.fixture(scope="module")
def spec():
    return spec_with("msg: str | None = None\nn: Optional[int] = 3\nanything = None\nplain: str = 'a'\n")


@pytest.mark.parametrize(
    "values, resolved",
    [
        ({}, {"msg": None, "n": 3, "anything": None, "plain": "a"}),
        ({"msg": "hi", "n": None}, {"msg": "hi", "n": None, "anything": None, "plain": "a"}),
        ({"anything": {"a": [1, None]}}, {"msg": None, "n": 3, "anything": {"a": [1, None]}, "plain": "a"}),
        ({"anything": "text", "n": 2.0}, {"msg": None, "n": 2, "anything": "text", "plain": "a"}),
    ],
)
def test_null_and_any_value_are_accepted_where_declared(spec, values, resolved):
    assert validate_parameters(spec, values) == resolved


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("plain", None, "Parameter 'plain' must be str, got null."),
        ("msg", 3, "Parameter 'msg' must be str or null, got int 3."),
        ("n", "3", "Parameter 'n' must be int or null, got str \"3\"."),
    ],
)
def test_null_is_refused_elsewhere_and_types_still_hold(spec, key, value, message):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, {key: value})
    assert info.value.details == [{"parameter": key, "message": message}]


def test_the_published_schema_says_the_same(spec):
    schema = spec.parameters_schema()
    assert schema["properties"]["msg"]["type"] == ["string", "null"]
    assert schema["properties"]["anything"] == {"default": None}
    validator = jsonschema.Draft202012Validator(schema)
    for values in ({"msg": None}, {"n": None}, {"anything": None}, {"anything": [1]}):
        assert validator.is_valid(values) and not spec.parameter_rules.problems(values)
    for values in ({"plain": None}, {"msg": 1}):
        assert not validator.is_valid(values) and spec.parameter_rules.problems(values)


def test_a_trigger_may_pass_null_to_a_nullable_parameter_only():
    params = spec_with("msg: str | None = 'a'\nplain: str = 'a'").parameters
    good = check_triggers([{"schedule": "0 * * * *", "parameters": {"msg": None}}], "p", params)
    bad = check_triggers([{"schedule": "0 * * * *", "parameters": {"plain": None}}], "p", params)
    assert good == []
    assert [p["message"] for p in bad] == ["Trigger 0: parameter 'plain' must be str."]


def test_accepts_follows_nullable():
    assert Parameter("x", "str", None, nullable=True).accepts(None)
    assert not Parameter("x", "str", "a").accepts(None)
    assert Parameter("x", "any", None).accepts({"k": [None]})
