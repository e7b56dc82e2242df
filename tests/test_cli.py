"""The `nbmesh` command line (docs/reference/cli.md) against a real runtime."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.conftest import cli, free_port, make_notebook, unique
from tests.unit.test_cli_format import column


def nbmesh(*args: str, url: str) -> subprocess.CompletedProcess:
    return cli(*args, env={"NBMESH_URL": url, "COLUMNS": "200", "NBMESH_TOKEN": None})


@pytest.fixture
def notebook_file(tmp_path):
    def write(cells, filename="my_product.ipynb", **meta):
        path = tmp_path / filename
        path.write_text(json.dumps(make_notebook(cells, **meta)))
        return path

    write.folder = tmp_path
    return write


CELLS = [("parameters", 'region: str = "EU"  # sales region\nn: int = 2\nitems: list = []'), ("output", "{'region': region, 'n': n, 'items': items}")]


def test_publish_names_from_flag_metadata_or_stem(runtime, notebook_file):
    by_stem = nbmesh("publish", str(notebook_file(CELLS, filename="sales_summary.ipynb")), url=runtime.url)
    assert by_stem.returncode == 0, by_stem.stderr
    assert "published sales-summary version" in by_stem.stdout
    name = unique("meta")
    by_meta = nbmesh("publish", str(notebook_file(CELLS, name=name)), url=runtime.url)
    assert f"published {name} version 1" in by_meta.stdout
    flagged = unique("flag")
    by_flag = nbmesh("publish", str(notebook_file(CELLS)), "--name", flagged, url=runtime.url)
    assert f"published {flagged} version 1" in by_flag.stdout


def test_invoke_types_values_by_the_schema(runtime, notebook_file):
    name = unique("cli")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    done = nbmesh("invoke", name, "-p", "region", "2024", "-p", "n", "5", "-p", "items", '["a", 1]', url=runtime.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"region": "2024", "n": 5, "items": ["a", 1]}


def test_errors_are_one_line_with_nonzero_exit(runtime, notebook_file):
    name = unique("cli")
    nbmesh("publish", str(notebook_file(CELLS + [("", "raise ValueError('no [data] here')")])), "--name", name, url=runtime.url)
    cases = [
        nbmesh("invoke", name, "-p", "n", "many", url=runtime.url),
        nbmesh("invoke", name, url=runtime.url),
        nbmesh("invoke", "no-such-product", url=runtime.url),
        nbmesh("runs", "no-such-product", url=runtime.url),
        nbmesh("show", "no-such-product", url=runtime.url),
        nbmesh("unpublish", "no-such-product", url=runtime.url),
        nbmesh("publish", "/nonexistent.ipynb", url=runtime.url),
        nbmesh("list", url=f"http://127.0.0.1:{free_port()}"),
    ]
    for proc in cases:
        assert proc.returncode == 1, proc
        lines = proc.stderr.strip().splitlines()
        assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    # One line each, but for the publish, which goes on to its summary line.
    assert all(len(proc.stderr.strip().splitlines()) == 1 for proc in cases[:6])
    assert "Parameter 'n' is an int: pass it as JSON, like -p n 3 (got 'many')." in cases[0].stderr
    assert "ValueError: no [data] here" in cases[1].stderr
    assert "No product named 'no-such-product' is published." in cases[4].stderr


def test_the_runtimes_refusal_of_parameters_lists_each_one(runtime, notebook_file):
    name = unique("cli")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    proc = nbmesh("invoke", name, "-p", "n", '"x"', "-p", "nope", "1", url=runtime.url)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: Invalid parameters for product '{name}'.",
        "  Parameter 'n' must be int, got str \"x\".",
        "  Unknown parameter 'nope'; known parameters: region, n, items.",
    ]


def test_a_refusal_lists_one_problem_per_line_sorted_by_cell_numbered_from_1(runtime, notebook_file):
    cells = [("md", "# title"), ("parameters", "x = foo"), ("", "def f(:"), ("output", "y = 1")]
    proc = nbmesh("publish", str(notebook_file(cells, filename="broken.ipynb")), url=runtime.url)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[:4] == [
        f"error: {notebook_file.folder / 'broken.ipynb'} was not published: The notebook is not a valid product.",
        "  cell 2: Parameter 'x': default 'foo' is not a literal value.",
        "  Cell 3 has a syntax error on line 1: invalid syntax.",
        "  The output cell (cell 4) must end with an expression: its value is the result.",
    ]


def test_publish_publishes_what_it_can_and_names_each_refusal(runtime, notebook_file):
    good, other = unique("good"), unique("other")
    first = notebook_file(CELLS, filename="a.ipynb", name=good)
    bad = notebook_file(CELLS[:1], filename="bad.ipynb", name=unique("bad"))
    last = notebook_file(CELLS, filename="c.ipynb", name=other)
    proc = nbmesh("publish", str(first), str(bad), str(last), url=runtime.url)
    assert proc.returncode == 1
    assert f"published {good} version 1" in proc.stdout and f"published {other} version 1" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {bad} was not published: The notebook is not a valid product.",
        f"error: 1 of 3 notebooks refused (2 published): {bad}.",
    ]
    assert "  No cell is tagged 'output': tag the cell whose last expression is the result." in proc.stderr.splitlines()


def test_version_and_short_help():
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("nbmesh ") and version.stdout.strip()[7].isdigit()
    for args in ([], ["-h"], ["--help"], ["invoke", "-h"]):
        proc = cli(*args)
        assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    assert "--json" in cli("invoke", "-h", env={"COLUMNS": "200"}).stdout


def test_show_and_its_json(runtime, notebook_file, http):
    name = unique("show")
    nbmesh("publish", str(notebook_file(CELLS, title="Sales by region", owner="sales")), "--name", name, url=runtime.url)
    shown = nbmesh("show", f"{name}@1", url=runtime.url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{name} version 1 (versions 1)"
    assert "title: Sales by region" in lines and "owner: sales" in lines
    assert '  region: str = "EU"  # sales region' in lines and "  items: list = []" in lines
    as_json = nbmesh("show", name, "--json", url=runtime.url)
    assert json.loads(as_json.stdout) == http.get(f"/api/products/{name}").json()


def test_unpublish(runtime, notebook_file):
    name = unique("gone")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    proc = nbmesh("unpublish", name, url=runtime.url)
    assert proc.returncode == 0 and proc.stdout.strip() == f"unpublished {name}"
    after = nbmesh("invoke", name, url=runtime.url)
    assert after.returncode == 1 and f"No product named '{name}' is published." in after.stderr


def test_invoke_keeps_stdout_for_the_result_and_says_the_run_id_on_stderr(runtime, notebook_file, http):
    name = unique("inv")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    proc = nbmesh("invoke", name, "-p", "n", "3", url=runtime.url)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"region": "EU", "n": 3, "items": []}
    run_id = proc.stderr.split()[1]
    assert proc.stderr.startswith(f"run {run_id} succeeded in ")
    assert http.get(f"/api/runs/{run_id}").json()["parameters"]["n"] == 3
    whole = nbmesh("invoke", name, "--json", "-p", "region", "US", url=runtime.url)
    run = json.loads(whole.stdout)
    assert run["status"] == "succeeded" and run["result"]["region"] == "US"
    assert run == http.get(f"/api/runs/{run['run_id']}").json()


def test_invoke_json_of_a_failed_run_prints_the_run_and_fails(runtime, notebook_file):
    name = unique("fails")
    nbmesh("publish", str(notebook_file(CELLS + [("", "raise ValueError('nope')")])), "--name", name, url=runtime.url)
    proc = nbmesh("invoke", name, "--json", url=runtime.url)
    run = json.loads(proc.stdout)
    assert proc.returncode == 1 and run["status"] == "failed" and run["error"]["ename"] == "ValueError"
    assert proc.stderr.strip().splitlines() == [f"error: run {run['run_id']} failed in {run['duration_ms']:.0f} ms: ValueError: nope"]


def test_a_list_given_as_text_says_to_pass_json(runtime, notebook_file):
    name = unique("cli")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    proc = nbmesh("invoke", name, "-p", "items", "a", url=runtime.url)
    assert proc.returncode == 1
    assert proc.stderr.strip() == """error: Parameter 'items' is a list: pass it as JSON, like -p items '["a", "b"]' (got 'a')."""


def test_runs_of_a_pinned_version(runtime, notebook_file, http):
    name = unique("pin")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    nbmesh("invoke", name, url=runtime.url)
    nbmesh("publish", str(notebook_file(CELLS + [("", "changed = 1")])), "--name", name, url=runtime.url)
    nbmesh("invoke", name, url=runtime.url)
    nbmesh("invoke", name, url=runtime.url)
    by_version = {v: json.loads(nbmesh("runs", f"{name}@{v}", "--json", url=runtime.url).stdout)["runs"] for v in (1, 2)}
    assert [r["version"] for r in by_version[1]] == [1]
    assert [r["version"] for r in by_version[2]] == [2, 2]
    every = json.loads(nbmesh("runs", name, "--json", url=runtime.url).stdout)["runs"]
    assert len(every) == 3
    assert [r["run_id"] for r in http.get(f"/api/products/{name}@2/runs", params={"limit": 1}).json()["runs"]] == [every[0]["run_id"]]
    missing = nbmesh("runs", f"{name}@9", url=runtime.url)
    assert missing.returncode == 1 and f"Product '{name}' has no version 9" in missing.stderr


@pytest.mark.parametrize("columns", ["80", "60"])
def test_tables_never_cut_ids_or_dates_in_a_narrow_terminal(runtime, notebook_file, columns):
    name = unique("narrow-product-with-a-long-name")
    nbmesh("publish", str(notebook_file(CELLS, title="A long title " * 6)), "--name", name, url=runtime.url)
    run_id = nbmesh("invoke", name, url=runtime.url).stderr.split()[1]
    env = {"NBMESH_URL": runtime.url, "COLUMNS": columns, "NBMESH_TOKEN": None}
    runs, listed = cli("runs", name, env=env), cli("list", env=env)
    for proc in (runs, listed):
        assert proc.returncode == 0 and "…" not in proc.stdout
        assert max(len(line) for line in proc.stdout.splitlines()) <= int(columns)
    started = json.loads(nbmesh("runs", name, "--json", url=runtime.url).stdout)["runs"][0]["started_at"]
    if columns == "80":
        assert run_id in runs.stdout and started in runs.stdout
        assert name in listed.stdout
    else:  # narrower than an id and a date side by side: they fold, every character kept
        assert run_id in column(runs.stdout, 0) and started in column(runs.stdout, 2)
    assert name in column(listed.stdout, 0)


def test_list_and_runs_as_json(runtime, notebook_file, http):
    name = unique("cli")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    nbmesh("invoke", name, url=runtime.url)
    listed = json.loads(nbmesh("list", "--json", url=runtime.url).stdout)
    assert listed == http.get("/api/products").json()
    runs = json.loads(nbmesh("runs", name, "--json", url=runtime.url).stdout)
    assert runs == http.get(f"/api/products/{name}/runs").json()


def test_serve_on_a_taken_port_says_so_before_starting_kernels(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("serve", "--store", str(tmp_path), "--port", str(port), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: Port {port} on 127.0.0.1 is already in use: stop what listens there or pass another --port."]


def test_list_and_runs(runtime, notebook_file):
    name = unique("cli")
    nbmesh("publish", str(notebook_file(CELLS)), "--name", name, url=runtime.url)
    nbmesh("invoke", name, url=runtime.url)
    listed = nbmesh("list", url=runtime.url)
    assert listed.returncode == 0 and name in listed.stdout
    runs = nbmesh("runs", name, "--limit", "5", url=runtime.url)
    assert runs.returncode == 0 and "succeeded" in runs.stdout


def test_serve_takes_any_setting_with_set(fresh_runtime):
    rt = fresh_runtime("--pool-size", "1", "--set", "pool.spares=0", "--set", "runs.queue_size=7")
    with rt.client() as http:
        pool = http.get("/healthz").json()["pool"]
    assert (pool["size"], pool["spare_target"]) == (1, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "pool.nope=1"], "error: --set pool.nope: there is no such setting."),
        (["--set", "pool.start_timeout=soon"], "error: --set pool.start_timeout: 'soon' is not a number."),
        (["--set", "pool.size=0"], "error: --pool-size must be at least 1, got 0."),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line(tmp_path, args, message):
    proc = cli("serve", "--store", str(tmp_path), "--port", str(free_port()), *args, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def test_a_republish_that_changes_nothing_says_unchanged(runtime, notebook_file):
    name = unique("same")
    path = str(notebook_file(CELLS, name=name))
    assert f"published {name} version 1:" in nbmesh("publish", path, url=runtime.url).stdout
    again = nbmesh("publish", path, url=runtime.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"unchanged: {name} version 1:") and "published" not in again.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["invoke"], "error: Missing argument 'name'. (see 'nbmesh invoke -h')"),
        (["runs", "p", "--limit", "0"], "error: Invalid value for '--limit': "),
        (["list", "--bogus"], "error: No such option: --bogus. (see 'nbmesh list -h')"),
        (["nope"], "error: No such command 'nope'."),
    ],
)
def test_a_usage_error_is_one_line_with_status_2(args, message):
    proc = cli(*args)
    assert proc.returncode == 2, proc
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(message), proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "url, says",
    [
        ("notaurl", "error: The runtime URL must start with http:// or https://, got 'notaurl'."),
        ("http://[::1", "error: The runtime URL 'http://[::1' is not valid: "),
    ],
)
def test_a_url_that_is_not_one_is_one_error_line(url, says):
    proc = cli("list", "--url", url)
    assert proc.returncode == 1 and proc.stderr.startswith(says), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_a_notebook_file_holding_nan_is_refused_by_the_runtime_with_its_place(runtime, notebook_file):
    path = notebook_file(CELLS, name=unique("nan"), timeout="__NAN__")
    path.write_text(path.read_text().replace('"__NAN__"', "NaN"))
    proc = nbmesh("publish", str(path), url=runtime.url)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "  The notebook holds NaN at /metadata/nbmesh/timeout: JSON has no NaN or Infinity." in proc.stderr.splitlines()
