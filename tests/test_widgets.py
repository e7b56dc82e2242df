"""kernel_runtime.widgets.product_form against a real runtime: widgets per type, a result, and errors."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from kernel_runtime import Client
from kernel_runtime.widgets import product_form

from .conftest import make_notebook, publish, unique

PARAMETERS = """\
n: int = 2  # how many
ratio: float = 0.5
label: str = "x"  # a label
loud: bool = False
items: list = [1, 2]
options: dict = {"k": 1}
"""
OUTPUT = """\
if n < 0:
    raise ValueError("n must not be negative")
{"n": n, "ratio": ratio, "label": label.upper() if loud else label, "items": items, "options": options}
"""


@pytest.fixture(scope="module")
def product(runtime):
    name = unique("form")
    with runtime.client() as http:
        return publish(http, make_notebook([("parameters", PARAMETERS), ("output", OUTPUT)], name, title="Form test"))


@pytest.fixture
def client(runtime):
    with Client(runtime.url) as client:
        yield client


def test_one_widget_of_the_right_kind_per_parameter(product, client):
    form = product_form(product, client=client)
    kinds = {name: type(widget) for name, widget in form.inputs.items()}
    assert kinds == {
        "n": widgets.IntText,
        "ratio": widgets.FloatText,
        "label": widgets.Text,
        "loud": widgets.Checkbox,
        "items": widgets.Textarea,
        "options": widgets.Textarea,
    }
    assert form.inputs["n"].value == 2 and form.inputs["label"].value == "x"
    assert form.button.description == "Invoke"
    assert "Form test" in form.children[0].value
    assert "how many" in form.children[1].children[1].value


def test_invoke_shows_the_json_result(product, client):
    form = product_form(product, client=client)
    form.inputs["n"].value = 5
    form.inputs["loud"].value = True
    form.inputs["items"].value = '["a"]'
    form.button.click()
    assert form.error is None, form.error
    assert form.result == {"n": 5, "ratio": 0.5, "label": "X", "items": ["a"], "options": {"k": 1}}
    assert form.run["status"] == "succeeded"
    assert "succeeded" in form.status.value
    assert "&quot;label&quot;: &quot;X&quot;" in form.output.value


def test_a_failed_run_shows_its_error_and_traceback(product, client):
    form = product_form(product, client=client)
    form.inputs["n"].value = -1
    run = form.invoke()
    assert run["status"] == "failed"
    assert form.result is None
    assert "Run failed" in form.status.value and "ValueError: n must not be negative" in form.status.value
    assert "Traceback" in form.output.value or "ValueError" in form.output.value
    assert "\x1b[" not in form.output.value


def test_bad_values_are_named_and_nothing_runs(product, client):
    form = product_form(product, client=client)
    form.inputs["options"].value = "{not json"
    assert form.invoke() is None and form.run is None
    assert "options: not valid JSON" in form.error

    form.inputs["options"].value = "[1, 2]"  # JSON, but not a dict: the runtime says so
    assert form.invoke() is None
    assert "options" in form.error
    assert "#d32f2f" in form.status.value


def test_an_unknown_product_is_a_clear_error(client):
    from kernel_runtime.errors import NotFound

    with pytest.raises(NotFound):
        product_form("no-such-product", client=client)


def test_nullable_and_any_fields_send_null_json_or_text(runtime, client):
    parameters = 'msg = None\nlabel: str | None = None\nlimit: Optional[int] = 10\nplain: str = "a"'
    with runtime.client() as http:
        name = publish(http, make_notebook([("parameters", parameters), ("output", "[msg, label, limit, plain]")], unique("nullable")))
    form = product_form(name, client=client)
    assert {n: type(w) for n, w in form.inputs.items()} == {
        "msg": widgets.Textarea, "label": widgets.Text, "limit": widgets.Text, "plain": widgets.Text,
    }
    assert (form.inputs["label"].value, form.inputs["limit"].value) == ("", "10")
    assert "str | None" in form.children[2].children[1].value
    form.invoke()
    assert form.error is None and form.result == [None, None, 10, "a"]
    form.inputs["msg"].value = '{"k": [1]}'
    form.inputs["label"].value = "hi"
    form.inputs["limit"].value = ""
    form.invoke()
    assert form.result == [{"k": [1]}, "hi", None, "a"]
    form.inputs["msg"].value = "plain words"
    form.inputs["limit"].value = "many"
    assert form.invoke() is None and form.error.splitlines()[1].startswith("limit: not valid JSON")
    form.inputs["limit"].value = "3"
    form.invoke()
    assert form.result == ["plain words", "hi", 3, "a"]
