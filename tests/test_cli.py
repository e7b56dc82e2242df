"""The `nbmesh` command line (docs/reference/cli.md) against a real runtime."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import cli, free_port, make_notebook, unique


def nbmesh(*args: str, url: str) -> subprocess.CompletedProcess:
    return cli(*args, env={"NBMESH_URL": url, "COLUMNS": "200", "NBMESH_TOKEN": None})


@pytest.fixture
def notebook_file(tmp_path):
    def write(cells, filename="my_product.ipynb", **meta):
        path = tmp_path / filename
        path.write_text(json.dumps(make_notebook(cells, **meta)))
        return path

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
        nbmesh("publish", str(notebook_file(CELLS[:1])), "--name", unique("bad"), url=runtime.url),
        nbmesh("invoke", name, "-p", "n", "many", url=runtime.url),
        nbmesh("invoke", name, url=runtime.url),
        nbmesh("invoke", "no-such-product", url=runtime.url),
        nbmesh("runs", "no-such-product", url=runtime.url),
        nbmesh("publish", "/nonexistent.ipynb", url=runtime.url),
        nbmesh("list", url=f"http://127.0.0.1:{free_port()}"),
    ]
    for proc in cases:
        assert proc.returncode != 0, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr
    assert "output" in cases[0].stderr
    assert "must be int" in cases[1].stderr
    assert "ValueError: no [data] here" in cases[2].stderr


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
