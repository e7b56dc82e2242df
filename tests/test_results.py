"""docs/reference/http-api.md, "Results and formats", on a real runtime: the result routes, each format
read back with pandas and pyarrow, content negotiation (Accept, ?format=), 406 for what has no form,
query values typed by the parameter schema, failed runs, and who may read a result."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import cli, error_of, invoke, publish, runs_of
from tests.test_access import TOKEN, write_access

TABLE = [
    ("parameters", "rows: int = 3\nlabel: str = 'a'\nscale: float = 1.5"),
    ("", "import pandas as pd\nframe = pd.DataFrame({'i': range(rows), 'label': [f'{label}{i}' for i in range(rows)]})\n"
         "frame['x'] = frame['i'] * scale\nframe['even'] = frame['i'] % 2 == 0"),
    ("output", "frame"),
]
NESTED = [("parameters", "n: int = 2"), ("output", "{'n': n, 'items': list(range(n))}")]
RAGGED = [("output", "[{'a': 1}, {'b': 'x'}, {'a': 2, 'b': 'y'}]")]
MIXED = [("output", "[{'a': 1}, {'a': 'one'}]")]
DEEP = [("output", "[{'a': {'b': 1}}]")]
TYPES = [
    ("parameters", "n: int = 1\nratio: float = 0.5\nname: str = 'x'\nflag: bool = False\nitems: list = []\nopts: dict = {}"),
    ("output", "{'n': n, 'ratio': ratio, 'name': name, 'flag': flag, 'items': items, 'opts': opts}"),
]
FAILS = [("parameters", "n: int = 1"), ("output", "n / 0")]
SLOW = [("parameters", "seconds: float = 30.0"), ("", "import time\ntime.sleep(seconds)"), ("output", "seconds")]
EXPECTED = pd.DataFrame({"i": [0, 1, 2], "label": ["a0", "a1", "a2"], "x": [0.0, 1.5, 3.0], "even": [True, False, True]})
PARQUET, ARROW = "application/vnd.apache.parquet", "application/vnd.apache.arrow.stream"


@pytest.fixture(scope="module")
def table(runtime):
    with runtime.client() as http:
        return publish(http, TABLE)


def read(media: str, body: bytes) -> pd.DataFrame:
    if media == "text/csv":
        return pd.read_csv(io.BytesIO(body))
    if media == PARQUET:
        return pq.read_table(io.BytesIO(body)).to_pandas()
    return pa.ipc.open_stream(body).read_all().to_pandas()


@pytest.mark.parametrize("media", ["text/csv", PARQUET, ARROW])
def test_each_format_by_accept_reads_back_as_the_dataframe(http, table, media):
    for path in (f"/api/products/{table}/result", f"/api/products/{table}/invoke"):
        answer = http.request("GET" if path.endswith("result") else "POST", path, headers={"Accept": media},
                              **({} if path.endswith("result") else {"json": {}}))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].split(";")[0] == media
        pd.testing.assert_frame_equal(read(media, answer.content), EXPECTED)


@pytest.mark.parametrize("fmt,media", [("csv", "text/csv"), ("parquet", PARQUET), ("arrow", ARROW)])
def test_the_format_query_wins_over_accept(http, table, fmt, media):
    answer = http.get(f"/api/products/{table}/result", params={"format": fmt, "rows": 2}, headers={"Accept": "application/json"})
    assert answer.headers["content-type"].split(";")[0] == media
    pd.testing.assert_frame_equal(read(media, answer.content), EXPECTED.head(2))
    run_id = invoke(http, table)["run_id"]
    again = http.get(f"/api/runs/{run_id}/result", params={"format": fmt})
    pd.testing.assert_frame_equal(read(media, again.content), EXPECTED)


def test_json_is_the_default_the_run_object_on_invoke_the_result_alone_on_result_routes(http, table):
    records = EXPECTED.to_dict("records")
    assert http.get(f"/api/products/{table}/result").json() == records
    assert http.get(f"/api/products/{table}/result", headers={"Accept": "text/html, */*;q=0.1"}).json() == records
    run = http.post(f"/api/products/{table}/invoke", json={}, headers={"Accept": "application/json"}).json()
    assert run["status"] == "succeeded" and run["result"] == records
    assert http.post(f"/api/products/{table}/invoke?format=json", json={}).json()["run_id"]
    assert http.get(f"/api/runs/{run['run_id']}/result").json() == records


def test_accept_quality_values_rank_the_formats(http, table):
    answer = http.get(f"/api/products/{table}/result", headers={"Accept": f"application/json;q=0.5, {PARQUET};q=0.9, text/csv;q=0"})
    assert answer.headers["content-type"] == PARQUET
    answer = http.get(f"/api/products/{table}/result", headers={"Accept": "text/*"})
    assert answer.headers["content-type"].startswith("text/csv")


def test_ragged_records_become_columns_with_nulls(http):
    name = publish(http, RAGGED)
    frame = read(ARROW, http.get(f"/api/products/{name}/result?format=arrow").content)
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist()[::2] == [1, 2] and pd.isna(frame["a"][1])
    assert frame["b"].tolist()[1:] == ["x", "y"] and pd.isna(frame["b"][0])


@pytest.mark.parametrize("cells,words", [(NESTED, "a dict, not a table"), (MIXED, "no single"), (DEEP, "holds a dict")])
def test_a_result_that_is_no_table_is_406_with_the_run_id(http, cells, words):
    name = publish(http, cells)
    for media in ("text/csv", PARQUET, ARROW):
        body = error_of(http.get(f"/api/products/{name}/result", headers={"Accept": media}), 406)
        assert words in body["error"] and body["type"] == "NotAcceptable"
        run_id = body["details"][0]["run_id"]
        assert http.get(f"/api/runs/{run_id}").json()["status"] == "succeeded"
        assert error_of(http.get(f"/api/runs/{run_id}/result", headers={"Accept": media}), 406)
    assert http.get(f"/api/products/{name}/result").status_code == 200


@pytest.mark.parametrize("query,headers", [({"format": "xml"}, {}), ({}, {"Accept": "text/html"}), ({}, {"Accept": "text/csv;q=0"}),
                                           ({}, {"Accept": "text/csv;q=nan"})])
def test_an_unknown_format_is_406_before_anything_runs(http, table, query, headers):
    before = len(runs_of(http, table))
    for method, path in (("GET", f"/api/products/{table}/result"), ("POST", f"/api/products/{table}/invoke")):
        body = error_of(http.request(method, path, params=query, headers=headers, json={} if method == "POST" else None), 406)
        assert "format" in body["error"] or "Accept" in body["error"]
    assert len(runs_of(http, table)) == before


def test_query_values_are_typed_by_the_parameter_schema(http):
    name = publish(http, TYPES)
    query = {"n": "7", "ratio": "2", "name": "42", "flag": "true", "items": "[1, \"a\"]", "opts": '{"k": null}'}
    assert http.get(f"/api/products/{name}/result", params=query).json() == {
        "n": 7, "ratio": 2, "name": "42", "flag": True, "items": [1, "a"], "opts": {"k": None}}
    assert http.get(f"/api/products/{name}/result", params={"name": "[1]"}).json()["name"] == "[1]"
    # Unknown, mistyped, repeated, non-finite: 422 naming the parameter; nothing runs.
    before = len(runs_of(http, name))
    for query, words in (({"nope": "1"}, "Unknown parameter 'nope'"), ({"n": "three"}, "'n' must be int"),
                         ([("n", "1"), ("n", "2")], "more than once"), ({"ratio": "NaN"}, "ratio"),
                         ({"items": '["\\ud800"]'}, "items"), ({"n": "1.5"}, "'n' must be int")):
        body = error_of(http.get(f"/api/products/{name}/result", params=query), 422)
        assert words in " ".join([body["error"], *(d["message"] for d in body.get("details", []))]), body
    assert len(runs_of(http, name)) == before


def test_a_failed_or_timed_out_run_answers_with_its_run_object(http):
    fails, slow = publish(http, FAILS), publish(http, SLOW, timeout=1)
    run = http.get(f"/api/products/{fails}/result", headers={"Accept": "text/csv"})
    assert run.status_code == 500 and run.json()["status"] == "failed" and run.json()["error"]["ename"] == "ZeroDivisionError"
    assert http.get(f"/api/products/{slow}/result?format=parquet").json()["status"] == "timed_out"
    body = error_of(http.get(f"/api/runs/{run.json()['run_id']}/result"), 404)
    assert "failed" in body["error"] and body["details"][0]["ename"] == "ZeroDivisionError"


def test_missing_products_and_runs_are_404(http, table):
    error_of(http.get("/api/products/no-such-product/result"), 404)
    error_of(http.get(f"/api/products/{table}@99/result"), 404)
    error_of(http.get(f"/api/runs/{'0' * 32}/result"), 404)


def test_pinned_versions_answer_their_own_result(http):
    name = publish(http, [("output", "[{'v': 1}]")])
    publish(http, [("output", "[{'v': 2}]")], name)
    assert http.get(f"/api/products/{name}@1/result").json() == [{"v": 1}]
    assert http.get(f"/api/products/{name}/result?format=csv").text == '"v"\n2\n'


def test_reading_a_result_needs_the_invoke_right(fresh_runtime, tmp_path):
    tokens = {"reader": "token-of-reader", "stranger": "token-of-stranger"}
    access = write_access(tmp_path / "access.json", {"reader": {"invoke": ["shared"]}, "stranger": {}}, tokens)
    rt = fresh_runtime("--token", TOKEN, "--access", access)
    with rt.client(headers={"Authorization": f"Bearer {TOKEN}"}) as admin:
        publish(admin, TABLE, "shared")
        run_id = invoke(admin, "shared")["run_id"]
    with rt.client(headers={"Authorization": "Bearer token-of-reader"}) as reader:
        assert reader.get("/api/products/shared/result?format=csv").status_code == 200
        assert reader.get(f"/api/runs/{run_id}/result").status_code == 200
    with rt.client(headers={"Authorization": "Bearer token-of-stranger"}) as stranger:
        for path in ("/api/products/shared/result?format=csv", f"/api/runs/{run_id}/result"):
            assert "stranger" in error_of(stranger.get(path), 403)["error"]
    with rt.client() as anonymous:
        error_of(anonymous.get("/api/products/shared/result"), 401)


def test_the_python_client_reads_each_format(runtime, table):
    from kernel_runtime import Client
    from kernel_runtime.errors import NotAcceptable, RunFailed

    with Client(runtime.url) as client:
        pd.testing.assert_frame_equal(client.result(table), EXPECTED)
        pd.testing.assert_frame_equal(client.result(table, rows=2, label="b").reset_index(drop=True),
                                      pd.DataFrame({"i": [0, 1], "label": ["b0", "b1"], "x": [0.0, 1.5], "even": [True, False]}))
        arrow = client.result(table, format="arrow")
        assert isinstance(arrow, pa.Table) and arrow.column_names == ["i", "label", "x", "even"]
        assert client.result(table, format="csv").splitlines()[:2] == ['"i","label","x","even"', '0,"a0",0,true']
        assert client.result(table, format="json") == EXPECTED.to_dict("records")
        pd.testing.assert_frame_equal(pq.read_table(io.BytesIO(client.result_bytes(table, "parquet"))).to_pandas(), EXPECTED)
        nested = publish(client._http, NESTED)
        with pytest.raises(NotAcceptable, match="not a table"):
            client.result(nested)
        assert client.result(nested, format="json") == {"n": 2, "items": [0, 1]}
        with pytest.raises(RunFailed) as failed:
            client.result(publish(client._http, FAILS))
        assert failed.value.run["error"]["ename"] == "ZeroDivisionError"


def test_nbmesh_invoke_writes_each_format(http, runtime, table, tmp_path):
    env = {"NBMESH_URL": runtime.url}
    done = cli("invoke", table, "-p", "rows", "2", "--format", "csv", env=env)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(done.stdout)), EXPECTED.head(2))
    for fmt, media in (("parquet", PARQUET), ("arrow", ARROW)):
        target = tmp_path / f"out.{fmt}"
        done = cli("invoke", table, "--format", fmt, "--output", str(target), env=env)
        assert done.returncode == 0 and done.stdout == "", done.stderr
        pd.testing.assert_frame_equal(read(media, target.read_bytes()), EXPECTED)
    done = cli("invoke", publish(http, NESTED), "--format", "csv", env=env)
    assert done.returncode == 1 and "not a table" in done.stderr
    done = cli("invoke", table, "--format", "xml", env=env)
    assert done.returncode == 1 and "Unknown format 'xml'" in done.stderr
    # Binary to a terminal is refused before anything runs; to a pipe it is written as is.
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "kernel_runtime", "invoke", table, "--format", "parquet"], stdout=secondary,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env}, timeout=120)
    finally:
        os.close(primary)
        os.close(secondary)
    assert done.returncode == 1 and "--output FILE" in done.stderr
    piped = subprocess.run([sys.executable, "-m", "kernel_runtime", "invoke", table, "--format", "arrow"], capture_output=True,
                           env={**os.environ, **env}, timeout=120)
    pd.testing.assert_frame_equal(read(ARROW, piped.stdout), EXPECTED)


def test_a_page_elsewhere_cannot_run_a_product_through_a_get_on_the_open_default(http, table):
    before = len(runs_of(http, table))
    for dest in ("image", "script", "empty", "iframe"):
        headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": dest}
        assert "another site" in error_of(http.get(f"/api/products/{table}/result", headers=headers), 403)["error"]
        headers["Sec-Fetch-Site"] = "same-site"
        error_of(http.get(f"/api/products/{table}/result", headers=headers), 403)
    assert len(runs_of(http, table)) == before
    # A link the user follows, the runtime's own pages, and tools that send no Sec-Fetch-* headers run it.
    navigation = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    own_page = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    for headers in (navigation, own_page, {}):
        assert http.get(f"/api/products/{table}/result", headers=headers).status_code == 200
