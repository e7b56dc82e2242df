"""An ipywidgets form that invokes a data product (README.md, "In JupyterLab").

``product_form("sales-summary")`` reads the product's parameter schema from the
runtime and shows one widget per parameter, of the right kind for its type, an
Invoke button, and below it the run's JSON result or its error. A nullable
parameter is a text field that sends null when left empty; an ``any`` one takes
JSON, else text. What the values mean is checked by the runtime, as for any other caller.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import ipywidgets as widgets

from .client import Client
from .errors import NbmeshError
from .model.records import SUCCEEDED

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _parameter_widget(name: str, spec: dict[str, Any]) -> widgets.Widget:
    kind = spec.get("type")
    default = spec.get("default")
    common: dict[str, Any] = {"description": name, "style": {"description_width": "initial"}}
    if spec.get("nullable"):
        # A field left empty sends null: a checkbox or a number field could not say "no value".
        placeholder = "empty: null" if kind == "str" else "JSON; empty: null"
        text = default if kind == "str" and isinstance(default, str) else "" if default is None else json.dumps(default)
        return widgets.Text(value=text, placeholder=placeholder, **common)
    if kind == "any":
        text = "" if default is None else json.dumps(default, indent=1)
        return widgets.Textarea(value=text, placeholder="JSON, else text; empty: the default", rows=3, **common)
    if kind == "bool":
        return widgets.Checkbox(value=bool(default), indent=False, **common)
    if kind == "int":
        return widgets.IntText(value=default if isinstance(default, int) else 0, **common)
    if kind == "float":
        return widgets.FloatText(value=float(default) if isinstance(default, (int, float)) else 0.0, **common)
    if kind == "str":
        return widgets.Text(value=default if isinstance(default, str) else "", **common)
    # list, dict, and any type the runtime may add later, are edited as JSON.
    text = "" if default is None and "default" not in spec else json.dumps(default, indent=1)
    return widgets.Textarea(value=text, placeholder="JSON", rows=3, **common)


def _pre(text: str, color: str = "inherit") -> str:
    return f"<pre style='white-space: pre-wrap; margin: 0; color: {color}'>{html.escape(text)}</pre>"


class ProductForm(widgets.VBox):
    """The form of one product; ``invoke()`` does what the button does and returns the run."""

    def __init__(self, product: dict[str, Any], client: Client, target: str) -> None:
        self.product = product
        self.client = client
        self.target = target
        self.specs: dict[str, dict[str, Any]] = product.get("parameters") or {}
        self.inputs: dict[str, widgets.Widget] = {name: _parameter_widget(name, spec) for name, spec in self.specs.items()}
        self.run: dict[str, Any] | None = None
        self.result: Any = None
        self.error: str | None = None

        title = html.escape(product.get("title") or product["name"])
        header = f"<b>{title}</b> <code>{html.escape(target)}</code> v{product.get('version')}"
        if product.get("description"):
            header += f"<br><span style='color: gray'>{html.escape(product['description'])}</span>"
        rows: list[widgets.Widget] = [widgets.HTML(header)]
        for name, widget in self.inputs.items():
            help_text = self.specs[name].get("help")
            kind = self.specs[name].get("type", "") + (" | None" if self.specs[name].get("nullable") else "")
            label = widgets.HTML(
                f"<span style='color: gray'>{html.escape(kind)}"
                + (f" · {html.escape(help_text)}" if help_text else "")
                + "</span>"
            )
            rows.append(widgets.HBox([widget, label]))
        if not self.inputs:
            rows.append(widgets.HTML("<i>This product takes no parameters.</i>"))
        self.button = widgets.Button(description="Invoke", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.invoke())
        self.status = widgets.HTML()
        self.output = widgets.HTML()
        rows += [self.button, self.status, self.output]
        super().__init__(rows)

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """The parameters object, and a message for every JSON field that does not parse."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, widget in self.inputs.items():
            spec = self.specs[name]
            if spec.get("nullable"):
                text = widget.value
                if not text.strip():
                    values[name] = None
                    continue
                if spec.get("type") == "str":
                    values[name] = text
                    continue
            elif isinstance(widget, widgets.Textarea):
                text = widget.value
                if not text.strip():
                    continue  # left empty: the product's default applies
            else:
                values[name] = widget.value
                continue
            try:
                values[name] = json.loads(text)
            except ValueError as exc:
                if spec.get("type") == "any":
                    values[name] = text  # as the command line does: JSON when it parses, else the text
                else:
                    problems.append(f"{name}: not valid JSON ({exc.msg}).")
        return values, problems

    def invoke(self) -> dict[str, Any] | None:
        self.run, self.result, self.error = None, None, None
        values, problems = self.values()
        if problems:
            return self._fail("Check the parameters.", problems)
        self.button.disabled = True
        self.status.value = f"<i>Running {html.escape(self.target)}…</i>"
        try:
            run = self.client.run(self.target, **values)
        except NbmeshError as exc:
            details = [d.get("message", json.dumps(d)) if isinstance(d, dict) else str(d) for d in exc.details]
            return self._fail(exc.message, details)
        finally:
            self.button.disabled = False
        self.run = run
        duration = run.get("duration_ms")
        timing = f" in {duration:.0f} ms" if isinstance(duration, (int, float)) else ""
        if run.get("status") != SUCCEEDED:
            error = run.get("error") or {}
            traceback = _ANSI.sub("", "\n".join(error.get("traceback") or []))
            self._fail(f"Run {run['status']}{timing}: {error.get('ename')}: {error.get('evalue')}", [], traceback)
            return run
        self.result = run.get("result")
        self.status.value = f"<span style='color: green'>succeeded{timing}</span> · run <code>{run['run_id']}</code>"
        self.output.value = _pre(json.dumps(self.result, indent=2, ensure_ascii=False))
        return run

    def _fail(self, message: str, lines: list[str], traceback: str = "") -> None:
        self.error = "\n".join([message, *lines])
        self.status.value = f"<b style='color: #d32f2f'>{html.escape(message)}</b>"
        body = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.output.value = (f"<ul style='color: #d32f2f'>{body}</ul>" if body else "") + (
            _pre(traceback, "#d32f2f") if traceback else ""
        )


def product_form(name: str, client: Client | None = None) -> ProductForm:
    """A form that invokes product ``name`` (or ``name@version``) with the values filled in."""
    client = client or Client()
    return ProductForm(client.product(name), client, name)
