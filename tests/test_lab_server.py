"""The jupyter_server extension, in a real Jupyter server (pytest-jupyter) talking to a real runtime.

pytest-jupyter's fixtures are imported here rather than registered as a plugin,
so its event-loop handling stays inside this module. The tests are plain
functions that drive the server's own loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the fixtures, for this module only
from tornado.httpclient import HTTPResponse

from .conftest import Runtime, answers, free_port, make_notebook, publish, unique, wait_for

TOKEN = "lab-test-secret"
CONSUMER_TOKEN = "lab-consumer-secret"


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    """A loop of this test's own, never one another test module's async fixtures hold."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def nbmesh(request, tmp_path):
    """The NbmeshLab settings; a test picks a setup with indirect parametrization."""
    setup = getattr(request, "param", "shared")
    if setup == "shared":
        return {"url": request.getfixturevalue("runtime").url, "start_runtime": False}
    if setup == "token":
        return {"url": request.getfixturevalue("token_runtime").url, "token": TOKEN, "start_runtime": False}
    if setup == "consumer":
        return {"url": request.getfixturevalue("access_runtime").url, "token": CONSUMER_TOKEN, "start_runtime": False}
    if setup == "absent":
        return {"url": f"http://127.0.0.1:{free_port()}", "start_runtime": False}
    if setup == "autostart":
        return {"url": f"http://127.0.0.1:{free_port()}", "store": str(tmp_path / "started-store")}
    if setup == "remote":
        # TEST-NET-1: never routed, so nothing answers there.
        return {"url": "http://192.0.2.1:8765", "start_runtime": True}
    raise ValueError(setup)


@pytest.fixture(scope="module")
def token_runtime(tmp_path_factory):
    rt = Runtime(
        store=str(tmp_path_factory.mktemp("token-store")), port=free_port(), env={"NBMESH_TOKEN": TOKEN}
    ).start()
    yield rt
    rt.stop()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def access_runtime(tmp_path_factory):
    """A runtime with principals: an admin, and the consumer the lab uses, which may invoke lab-shared only."""
    folder = tmp_path_factory.mktemp("access-store")
    (folder / "access.json").write_text(json.dumps({"principals": [
        {"name": "admin", "token_sha256": _digest(TOKEN), "admin": True},
        {"name": "lab-consumer", "token_sha256": _digest(CONSUMER_TOKEN), "invoke": ["lab-shared"]},
    ]}))
    rt = Runtime(store=str(folder / "store"), port=free_port(), args=["--access", str(folder / "access.json")]).start()
    with rt.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for name in ("lab-shared", "lab-hidden"):
            publish(http, make_notebook([("output", "'ok'")], name=name))
    yield rt
    rt.stop()


@pytest.fixture
def jp_server_config(nbmesh):
    return {
        "ServerApp": {"jpserver_extensions": {"kernel_runtime.lab.server_extension": True}},
        "NbmeshLab": nbmesh,
    }


@pytest.fixture
def lab(jp_fetch, jp_asyncio_loop):
    """Call the Jupyter server synchronously: lab("GET", "nbmesh/api/products") -> (status, json)."""

    def call(method: str, path: str, body: object = None, **kwargs: object) -> tuple[int, object]:
        if body is not None:
            kwargs["body"] = json.dumps(body)
            # As the front end sends it (extension/src/api.ts); tornado would say form-urlencoded.
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        elif method in ("PUT", "POST"):
            kwargs["body"] = ""
        kwargs.setdefault("request_timeout", 180)
        response: HTTPResponse = jp_asyncio_loop.run_until_complete(
            jp_fetch(*path.split("/"), method=method, raise_error=False, **kwargs)
        )
        text = response.body.decode() if response.body else ""
        return response.code, (json.loads(text) if text else None)

    return call


def test_info_names_the_runtime_and_never_the_token(lab, runtime):
    status, info = lab("GET", "nbmesh/info")
    assert status == 200
    assert info == {
        "url": runtime.url,
        "token_required": False,
        "available": True,
        "started_by_lab": False,
        "error": None,
    }


def test_publish_invoke_and_read_runs_through_the_server(lab):
    name = unique("lab-sum")
    notebook = make_notebook(
        [("parameters", "a: int = 2\nb: int = 3  # second term"), ("output", "{'sum': a + b}")],
        name=name,
        owner="lab-team",
    )
    status, product = lab("PUT", f"nbmesh/api/products/{name}", notebook)
    assert status == 201, product
    assert product["name"] == name and product["version"] == 1 and product["owner"] == "lab-team"
    assert product["parameters"]["b"] == {"type": "int", "default": 3, "help": "second term"}

    status, catalog = lab("GET", "nbmesh/api/products")
    assert status == 200 and name in [p["name"] for p in catalog["products"]]

    status, run = lab("POST", f"nbmesh/api/products/{name}@1/invoke", {"a": 40})
    assert status == 200, run
    assert run["status"] == "succeeded" and run["result"] == {"sum": 43}
    assert run["trigger"] == {"kind": "http"}

    status, runs = lab("GET", f"nbmesh/api/products/{name}/runs", params={"limit": 5})
    assert status == 200 and [r["run_id"] for r in runs["runs"]] == [run["run_id"]]

    status, executed = lab("GET", f"nbmesh/api/runs/{run['run_id']}/notebook")
    assert status == 200
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])

    status, body = lab("POST", f"nbmesh/api/products/{name}/invoke", {"a": "forty"})
    assert status == 422 and body["error"]


def test_publish_sends_the_files_of_the_notebooks_folder(lab, jp_root_dir):
    """JupyterLab's Publish: the editor's notebook, with the files its metadata names from its folder."""
    name = unique("lab-files")
    notebook = make_notebook([("output", "open('data/fruit.csv').read()")], name=name, files=["data/*.csv"])
    (jp_root_dir / "team" / "data").mkdir(parents=True)
    (jp_root_dir / "team" / "data" / "fruit.csv").write_text("apple,3\n")
    (jp_root_dir / "team" / "product.ipynb").write_text("{}")  # the saved file is stale: the editor's content is sent
    status, product = lab("PUT", f"nbmesh/publish/{name}", notebook, params={"path": "team/product.ipynb"})
    assert status == 201 and product["version"] == 1, product
    status, run = lab("POST", f"nbmesh/api/products/{name}/invoke", {})
    assert status == 200 and run["result"] == "apple,3\n"
    status, again = lab("PUT", f"nbmesh/publish/{name}", notebook, params={"path": "team/product.ipynb"})
    assert status == 200 and again["versions"] == [1]  # nothing changed: no new version

    (jp_root_dir / "team" / "data" / "fruit.csv").unlink()
    (jp_root_dir / "team" / "data" / "fruit.csv").symlink_to("/etc/hostname")
    status, body = lab("PUT", f"nbmesh/publish/{name}", notebook, params={"path": "team/product.ipynb"})
    assert status == 422 and "link leading out" in body["details"][0]["message"]
    status, body = lab("PUT", f"nbmesh/publish/{name}", notebook, params={"path": "../outside.ipynb"})
    assert status == 400 and "leaves the notebook's folder" in body["error"]


def test_an_invalid_notebook_lists_its_problems_and_stores_nothing(lab):
    name = unique("lab-bad")
    notebook = make_notebook([("parameters", "a = 1"), ("", "a + 1")], name=name)
    status, body = lab("PUT", f"nbmesh/api/products/{name}", notebook)
    assert status == 422
    assert body["error"]
    messages = [d["message"] if isinstance(d, dict) else d for d in body["details"]]
    assert any("output" in m for m in messages), messages
    status, _ = lab("GET", f"nbmesh/api/products/{name}")
    assert status == 404


def test_check_lists_an_invalid_name_with_every_other_problem(lab):
    # The runtime's URL refuses "Sales Report" before reading the notebook; the check lists all at once.
    notebook = make_notebook(
        [("parameters", "a = 1"), ("", "a + 1")], name="Sales Report", triggers=[{"schedule": "61 * * * *"}]
    )
    status, body = lab("POST", "nbmesh/check", {"name": None, "notebook": notebook})
    assert status == 200
    messages = [d["message"] for d in body["details"]]
    assert any("'Sales Report'" in m and "name" in m for m in messages), messages
    assert any("61 * * * *" in m for m in messages), messages
    assert any("output" in m for m in messages), messages
    # A valid notebook has no problems; the name passed wins over none in the metadata.
    status, body = lab("POST", "nbmesh/check", {"name": "fine", "notebook": make_notebook([("output", "1")])})
    assert (status, body) == (200, {"details": []})


@pytest.mark.parametrize(
    "body",
    [b"[1]", b'{"name": 3, "notebook": {}}', b'{"name": null}', b'{"notebook": {}, "name": "\\ud800"', b"NaN"],
)
def test_check_refuses_a_malformed_request_clearly(jp_fetch, jp_asyncio_loop, body):
    response = jp_asyncio_loop.run_until_complete(
        jp_fetch("nbmesh", "check", method="POST", body=body, raise_error=False, headers={"Content-Type": "application/json"})
    )
    answer = json.loads(response.body)
    assert response.code == 400 and answer["error"].endswith("."), answer


def test_a_failed_run_answers_with_its_run(lab):
    name = unique("lab-fail")
    notebook = make_notebook([("output", "int('no data for this region')")], name=name)
    assert lab("PUT", f"nbmesh/api/products/{name}", notebook)[0] == 201
    status, run = lab("POST", f"nbmesh/api/products/{name}/invoke", {})
    assert status == 500
    assert run["status"] == "failed"
    assert run["error"]["ename"] == "ValueError" and "no data" in run["error"]["evalue"]


def test_the_server_requires_a_jupyter_login(lab):
    status, _ = lab("GET", "nbmesh/api/products", headers={"Authorization": "token wrong"})
    assert status == 403


@pytest.mark.parametrize("nbmesh", ["token"], indirect=True)
def test_the_token_is_added_by_the_server_and_never_shown(lab, token_runtime):
    assert httpx.get(f"{token_runtime.url}/api/products").status_code == 401
    status, info = lab("GET", "nbmesh/info")
    assert status == 200 and info["token_required"] is True
    assert TOKEN not in json.dumps(info)
    name = unique("lab-tok")
    status, product = lab("PUT", f"nbmesh/api/products/{name}", make_notebook([("output", "'ok'")], name=name))
    assert status == 201, product
    assert lab("POST", f"nbmesh/api/products/{name}/invoke", {})[1]["result"] == "ok"


@pytest.mark.parametrize("nbmesh", ["consumer"], indirect=True)
def test_the_runtimes_refusals_reach_the_browser_intact(lab, access_runtime):
    name = unique("lab-refused")
    notebook = make_notebook([("output", "1")], name=name, owner="lab-team")
    status, body = lab("PUT", f"nbmesh/api/products/{name}", notebook)
    direct = httpx.put(
        f"{access_runtime.url}/api/products/{name}", json=notebook, headers={"Authorization": f"Bearer {CONSUMER_TOKEN}"}
    )
    assert status == 403 and direct.status_code == 403 and body == direct.json()
    assert "lab-consumer" in body["error"]
    assert lab("POST", "nbmesh/api/products/lab-hidden/invoke", {})[0] == 403
    assert lab("POST", "nbmesh/api/products/lab-shared/invoke", {})[1]["result"] == "ok"
    status, catalog = lab("GET", "nbmesh/api/products")
    assert status == 200 and [p["name"] for p in catalog["products"]] == ["lab-shared"]


@pytest.mark.parametrize("nbmesh", ["absent"], indirect=True)
def test_no_runtime_and_starting_one_switched_off_is_a_clear_502(lab, nbmesh):
    status, body = lab("GET", "nbmesh/api/products")
    assert status == 502
    assert body["error"] == f"The nbmesh runtime at {nbmesh['url']} did not answer."
    assert "switched off" in body["details"][0]
    status, info = lab("GET", "nbmesh/info")
    assert status == 200
    assert info["available"] is False and "switched off" in info["error"]


@pytest.mark.parametrize("nbmesh", ["remote"], indirect=True)
def test_a_runtime_elsewhere_is_never_started_here(lab):
    status, info = lab("GET", "nbmesh/info")
    assert status == 200
    assert info["available"] is False and "only a runtime on this machine" in info["error"]


@pytest.mark.parametrize("nbmesh", ["autostart"], indirect=True)
def test_a_local_runtime_is_started_when_none_answers_and_stopped_with_the_server(
    lab, nbmesh, jp_serverapp, jp_asyncio_loop, tmp_path
):
    status, info = lab("GET", "nbmesh/info")
    assert status == 200, info
    assert info["available"] is True and info["started_by_lab"] is True, info
    name = unique("lab-auto")
    assert lab("PUT", f"nbmesh/api/products/{name}", make_notebook([("output", "6 * 7")], name=name))[0] == 201
    assert lab("POST", f"nbmesh/api/products/{name}/invoke", {})[1]["result"] == 42
    assert (tmp_path / "started-store").is_dir()

    extension = jp_serverapp.web_app.settings["nbmesh"]
    process = extension.connection.process
    jp_asyncio_loop.run_until_complete(extension.stop_extension())
    assert process.poll() is not None
    wait_for(lambda: not answers(nbmesh["url"]), 10, "the started runtime to stop answering after the server stopped")
