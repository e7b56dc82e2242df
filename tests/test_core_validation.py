"""Publish-time validation and parameter checks (docs/reference/notebook-format.md), without a kernel."""

from __future__ import annotations

import json

import pytest

from kernel_runtime.errors import InvalidNotebook, InvalidParameters, InvalidRequest
from kernel_runtime.model.product import parse_ref, read_notebook, validate_parameters
from kernel_runtime.runtime.catalog import load_product
from tests.conftest import make_notebook

GOOD = [
    ("setup", "import math\nBASE = 10"),
    ("parameters", 'x: int = 3  # how many\nregion = "EU"  # sales region\nrate = 0.5\nflags: list = []\nopts = {"a": 1}\nloud = False'),
    ("", "y = x * BASE"),
    ("output", "{'y': y, 'region': region}"),
]


def spec_of(nb: dict, name: str | None = None):
    return load_product(read_notebook(json.dumps(nb)), name)


def problems_of(nb: dict, name: str | None = None) -> list[str]:
    with pytest.raises(InvalidNotebook) as info:
        spec_of(nb, name)
    return [d["message"] for d in info.value.details]


def test_parameters_types_defaults_and_help():
    spec = spec_of(make_notebook(GOOD, "good"))
    assert spec.parameters_json() == {
        "x": {"type": "int", "default": 3, "help": "how many"},
        "region": {"type": "str", "default": "EU", "help": "sales region"},
        "rate": {"type": "float", "default": 0.5},
        "flags": {"type": "list", "default": []},
        "opts": {"type": "dict", "default": {"a": 1}},
        "loud": {"type": "bool", "default": False},
    }
    assert [c.index for c in spec.setup_cells] == [0]
    assert [c.role for c in spec.run_cells] == ["parameters", "body", "output"]


def test_name_from_metadata_or_path_must_agree():
    assert spec_of(make_notebook(GOOD), "from-path").name == "from-path"
    assert any("published as" in p for p in problems_of(make_notebook(GOOD, "meta-name"), "path-name"))


@pytest.mark.parametrize("bad", ["Upper", "-dash", "under_score", "a" * 64, "", "x@1"])
def test_bad_names_are_listed(bad):
    assert any("name" in p for p in problems_of(make_notebook(GOOD), bad))


def test_no_output_cell():
    problems = problems_of(make_notebook(GOOD[:3], "p"))
    assert any("No cell is tagged 'output'" in p for p in problems)


def test_two_output_cells():
    problems = problems_of(make_notebook(GOOD + [("output", "1")], "p"))
    assert any("exactly one" in p for p in problems)


def test_every_problem_is_listed_at_once():
    nb = make_notebook([("parameters", "x = os.getenv('A')\ny: complex = 1j"), ("", "def (:")], "p", timeout=-1)
    nb["metadata"]["kernelspec"]["language"] = "R"
    problems = problems_of(nb)
    assert any("not a literal" in p for p in problems)
    assert any("No cell is tagged 'output'" in p for p in problems)
    assert any("syntax error" in p for p in problems)
    assert any("Unknown kernel language 'R'" in p for p in problems)
    assert any("timeout" in p for p in problems)
    assert len(problems) >= 5


def test_unparsable_parameters_cell_names_the_cell():
    with pytest.raises(InvalidNotebook) as info:
        spec_of(make_notebook([("parameters", "x = = 3"), ("output", "x")], "p"))
    assert info.value.details[0]["cell"] == 0
    assert "cannot be parsed" in info.value.details[0]["message"]


def test_parameters_cell_only_assignments():
    problems = problems_of(make_notebook([("parameters", "x = 3\nprint(x)"), ("output", "x")], "p"))
    assert any("not a plain assignment" in p for p in problems)


def test_annotation_must_match_default():
    problems = problems_of(make_notebook([("parameters", 'x: int = "three"'), ("output", "x")], "p"))
    assert any("is not an int" in p for p in problems)


def test_output_cell_must_end_with_expression():
    problems = problems_of(make_notebook([("output", "x = 1")], "p"))
    assert any("must end with an expression" in p for p in problems)


def test_not_nbformat_4():
    nb = make_notebook(GOOD, "p")
    nb["nbformat"] = 3
    assert any("nbformat 4" in p for p in problems_of(nb))


def test_not_json():
    with pytest.raises(InvalidNotebook):
        read_notebook(b"{not json")


def test_invalid_output_schema_and_triggers():
    nb = make_notebook(GOOD, "p", output_schema={"type": "nonsense"}, triggers=[{"schedule": "61 * * * *"}, {"event": "Bad Topic"}])
    problems = problems_of(nb)
    assert any("output_schema" in p for p in problems)
    assert any("cron" in p for p in problems)
    assert any("topic" in p for p in problems)


def test_magics_are_accepted():
    spec = spec_of(make_notebook([("", "%time z = 1"), ("output", "1")], "p"))
    assert spec.run_cells[0].source.startswith("%time")


# parameters -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec():
    return spec_of(make_notebook(GOOD, "good"))


def test_defaults_fill_in(spec):
    assert validate_parameters(spec, {"x": 5}) == {
        "x": 5, "region": "EU", "rate": 0.5, "flags": [], "opts": {"a": 1}, "loud": False
    }


def test_int_accepted_for_float(spec):
    values = validate_parameters(spec, {"rate": 2})
    assert values["rate"] == 2.0 and isinstance(values["rate"], float)


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"x": "3"}, "must be int"),
        ({"x": True}, "must be int"),
        ({"x": 1.5}, "must be int"),
        ({"loud": 1}, "must be bool"),
        ({"region": 3}, "must be str"),
        ({"flags": {}}, "must be list"),
        ({"nope": 1}, "Unknown parameter 'nope'"),
    ],
)
def test_bad_parameters(spec, params, fragment):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, params)
    assert fragment in info.value.details[0]["message"]


def test_every_bad_parameter_is_listed(spec):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(spec, {"x": "a", "region": 1, "zzz": 0})
    assert len(info.value.details) == 3


def test_parameters_must_be_object(spec):
    with pytest.raises(InvalidParameters):
        validate_parameters(spec, [1, 2])


def test_deep_nesting_rejected(spec):
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(InvalidParameters):
        validate_parameters(spec, {"flags": deep})


def test_refs():
    assert parse_ref("sales") == ("sales", None)
    assert parse_ref("sales@12") == ("sales", 12)
    for bad in ("sales@0", "sales@x", "Sales", "../etc"):
        with pytest.raises(InvalidRequest):
            parse_ref(bad)
