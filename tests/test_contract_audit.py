"""Disagreements an audit of the code against the reference docs found, each checked on a real runtime:
tracebacks number cells from 1, and `nbmesh serve` says its progress in whole lines."""

from __future__ import annotations

from tests.conftest import make_notebook, publish, wait_for


def test_a_failed_runs_traceback_numbers_cells_from_1(http):
    # Cells 1-3: parameters, an untagged cell, the output cell that raises (its `cell` index is 2).
    name = publish(http, make_notebook([("parameters", "x = 1"), ("", "y = 2"), ("output", "1 / 0")]))
    answer = http.post(f"/api/products/{name}/invoke", json={})
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["ename"] == "ZeroDivisionError"
    assert '  File "<cell 3>", line 1, in <module>' in error["traceback"], error


def test_serve_says_its_progress_in_whole_lines_whatever_the_width(fresh_runtime, tmp_path):
    # A long store path holding what rich would read as markup ("[x]"), on a log that is no terminal.
    store = tmp_path / ("[x]" + "s" * 90)
    rt = fresh_runtime("--pool-size", "1", "--spare-kernels", "0", store=str(store), env={"COLUMNS": "80"})
    lines = wait_for(lambda: [l for l in rt.log.read_text().splitlines() if "nbmesh answers on" in l] and rt.log.read_text().splitlines(),
                     30, "serve's ready line")
    assert f"nbmesh: store {store}, starting 1 kernel(s) (0 spare)…" in lines
    assert f"nbmesh answers on {rt.url} (0 product(s); no token, loopback callers only)" in lines
