"""Empty parameters on a real runtime and real kernels (docs/reference/notebook-format.md, "Parameters"):
papermill's idioms publish as they are, and null reaches the kernel only where it is declared."""

from __future__ import annotations

import json

import jsonschema

from tests.conftest import cli, error_of, invoke, publish

# papermill's own idioms, as its test notebooks write them.
PARAMETERS = 'msg = None\nlabel: str | None = None  # shown above\nlimit: Optional[int] = 10\nplain: str = "a"'
OUTPUT = "{'msg': msg, 'label': label, 'limit': limit, 'plain': plain, 'types': [type(v).__name__ for v in (msg, label, limit)]}"
CELLS = [("parameters", PARAMETERS), ("output", OUTPUT)]


def test_papermill_idioms_publish_as_they_are(runtime, http):
    name = publish(http, CELLS)
    assert http.get(f"/api/products/{name}").json()["parameters"] == {
        "msg": {"type": "any", "default": None},
        "label": {"type": "str", "nullable": True, "default": None, "help": "shown above"},
        "limit": {"type": "int", "nullable": True, "default": 10},
        "plain": {"type": "str", "default": "a"},
    }


def test_a_product_runs_with_and_without_null(runtime, http):
    name = publish(http, CELLS)
    defaults = invoke(http, name)["result"]
    assert defaults == {"msg": None, "label": None, "limit": 10, "plain": "a", "types": ["NoneType", "NoneType", "int"]}
    given = invoke(http, name, msg={"any": ["json", 1]}, label="hi", limit=None)["result"]
    assert given == {"msg": {"any": ["json", 1]}, "label": "hi", "limit": None, "plain": "a", "types": ["dict", "str", "NoneType"]}
    assert invoke(http, name, msg="text", label=None)["result"]["types"] == ["str", "NoneType", "int"]


def test_null_is_refused_where_not_declared(runtime, http):
    name = publish(http, CELLS)
    body = error_of(http.post(f"/api/products/{name}/invoke", json={"plain": None, "label": 3}), 422)
    assert body["details"] == [
        {"parameter": "plain", "message": "Parameter 'plain' must be str, got null."},
        {"parameter": "label", "message": "Parameter 'label' must be str or null, got int 3."},
    ]


def test_the_openapi_body_of_the_product_accepts_null_where_the_runtime_does(runtime, http):
    name = publish(http, CELLS)
    schema = http.get("/openapi.json").json()["paths"][f"/api/products/{name}/invoke"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert schema["properties"]["label"]["type"] == ["string", "null"]
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"msg": None, "label": None, "limit": None})
    assert not validator.is_valid({"plain": None})


def test_the_cli_types_any_and_nullable_values(runtime, http):
    name = publish(http, CELLS)
    env = {"NBMESH_URL": runtime.url, "NBMESH_TOKEN": None}
    proc = cli("invoke", name, "-p", "msg", '{"k": 1}', "-p", "label", "null", "-p", "limit", "null", env=env)
    assert proc.returncode == 0, proc.stderr
    # `any` takes JSON when it parses; a str, nullable or not, takes the text as it is.
    assert json.loads(proc.stdout) == {"msg": {"k": 1}, "label": "null", "limit": None, "plain": "a", "types": ["dict", "str", "NoneType"]}
    text = cli("invoke", name, "-p", "msg", "EU", env=env)
    assert json.loads(text.stdout)["msg"] == "EU"
    shown = cli("show", name, env=env).stdout.splitlines()
    assert "  msg: any = null" in shown and "  label: str | None = null  # shown above" in shown

