"""docs/operations.md, "Limits": a product that eats memory, floods output or leaves processes behind
costs only its own run; parameter values are bounded; one product cannot hold every kernel."""

from __future__ import annotations

import concurrent.futures
import os

import httpx
import psutil
import pytest

from tests.conftest import Gate, Runtime, free_port, invoke, metrics, publish, wait_for

ECHO = [("parameters", 's = "x"\nitems: list = []\nopts: dict = {}'), ("output", "{'s': s, 'n': len(items), 'k': len(opts)}")]


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate()


@pytest.fixture(scope="module")
def limited(tmp_path_factory, gate):
    """A runtime whose kernels may use 1 GiB of address space each."""
    args = ["--pool-size", "2", "--kernel-memory", "1024"]
    rt = Runtime(store=str(tmp_path_factory.mktemp("limited")), port=free_port(), args=args).start()
    yield rt
    rt.stop()


@pytest.fixture
def http(limited):
    with limited.client() as client:
        yield client


def failed_run(http, name, ename, **params) -> dict:
    r = http.post(f"/api/products/{name}/invoke", json=params)
    assert r.status_code == 500, r.text
    run = r.json()
    assert run["status"] == "failed" and run["error"]["ename"] == ename, run["error"]
    return run


def assert_others_still_work(http, *names):
    """The next invocation of any product succeeds: a fresh one, and the culprits themselves."""
    echo = publish(http, ECHO)
    assert invoke(http, echo, s="fine")["result"]["s"] == "fine"
    for name in names:
        invoke(http, name, harmless=True)


def test_allocating_past_the_memory_limit_fails_only_that_run(http, limited):
    # A leak: 50 MiB at a time until the 1 GiB limit stops it, inside the kernel.
    leak = "if not harmless:\n    hog = []\n    for _ in range(200):\n        hog.append(bytearray(50 * 1024**2))"
    name = publish(http, [("parameters", "harmless = False"), ("", leak), ("output", "'ok'")])
    run = failed_run(http, name, "MemoryError")
    assert run["error"]["traceback"][-1] == "MemoryError"
    at_once = publish(http, [("parameters", "harmless = False"), ("", "if not harmless:\n    hog = bytearray(2 * 1024**3)"), ("output", "'ok'")])
    failed_run(http, at_once, "MemoryError")
    assert_others_still_work(http, name, at_once)


def test_printing_100_mb_fails_only_that_run(http, limited):
    name = publish(http, [("parameters", "harmless = False"), ("", "if not harmless:\n    for _ in range(100):\n        print('x' * 1024 * 1024)"), ("output", "'ok'")])
    run = failed_run(http, name, "OutputLimitExceeded")
    assert "output limit" in run["error"]["evalue"]
    # The executed notebook keeps what was printed up to the limit, not 100 MB.
    notebook = http.get(f"/api/runs/{run['run_id']}/notebook")
    assert notebook.status_code == 200 and len(notebook.content) < 16 * 1024 * 1024
    assert psutil.Process(limited.proc.pid).memory_info().rss < 1024**3
    assert_others_still_work(http, name)


def test_displaying_and_returning_too_much_fail_only_those_runs(http):
    shows = publish(http, [("parameters", "harmless = False"),
                           ("", "from IPython.display import display, HTML\nif not harmless:\n    for _ in range(100):\n        display(HTML('y' * 1024 * 1024))"),
                           ("output", "'ok'")])
    failed_run(http, shows, "OutputLimitExceeded")
    returns = publish(http, [("parameters", "harmless = False"), ("output", "'ok' if harmless else ['z' * 1024] * 20000")])
    run = failed_run(http, returns, "OutputLimitExceeded")
    assert "result" in run["error"]["evalue"]
    assert_others_still_work(http, shows, returns)


def sleepers(mark: str) -> list[psutil.Process]:
    """Live processes running ``sleep MARK``: a product's children, seen from outside its sandbox."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["cmdline"] == ["sleep", mark] and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def test_a_child_process_outliving_the_run_is_stopped_and_fails_only_that_run(http, limited):
    # The child runs `sleep MARK`, so the test finds it from outside the kernel's PID namespace.
    mark = f"300.{os.getpid()}1"
    fork = f"""
import os, time
if not harmless:
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", {mark!r}])
    time.sleep(0.5)  # product code: the run ends while its child still lives
"""
    name = publish(http, [("parameters", "harmless = False"), ("", fork), ("output", "'ok'")])
    restarts = http.get("/healthz").json()["pool"]["restarts"]
    run = failed_run(http, name, "ChildProcessLeft")
    assert "1 child process" in run["error"]["evalue"]
    assert sleepers(mark) == []
    assert http.get("/healthz").json()["pool"]["restarts"] == restarts  # the kernel itself was not harmed
    assert_others_still_work(http, name)


def test_a_daemonized_grandchild_is_stopped_too(http):
    # Double fork and a new session: the classic daemon escapes its parent and its process group,
    # but not the kernel, which is a child subreaper.
    mark = f"300.{os.getpid()}2"
    daemon = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", {mark!r}])
    os._exit(0)
time.sleep(0.5)  # product code: the run ends while the daemon still lives
"""
    name = publish(http, [("", daemon), ("output", "'ok'")])
    failed_run(http, name, "ChildProcessLeft")
    assert sleepers(mark) == []


def test_a_subprocess_the_run_waits_for_is_fine(http):
    name = publish(http, [("", "import subprocess\nout = subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout"), ("output", "out.strip()")])
    assert http.post(f"/api/products/{name}/invoke", json={}).json()["result"] == "hi"


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"s": "x" * 65537}, "string of 65537 characters"),
        ({"items": list(range(10001))}, "list of 10001 items"),
        ({"opts": {str(i): i for i in range(10001)}}, "dict of 10001 items"),
        ({"items": [{"deep": "y" * 70000}]}, "string of 70000 characters"),
        ({"opts": {"k" * 70000: 1}}, "string of 70000 characters"),
    ],
)
def test_parameter_values_are_bounded(http, params, fragment):
    name = publish(http, ECHO)
    r = http.post(f"/api/products/{name}/invoke", json=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] and any(fragment in d["message"] for d in body["details"]), body


def test_parameter_nesting_is_bounded(http):
    name = publish(http, ECHO)
    deep: list = []
    for _ in range(40):
        deep = [deep]
    r = http.post(f"/api/products/{name}/invoke", json={"items": deep})
    assert r.status_code == 422 and "nested deeper than 32" in r.json()["details"][0]["message"]
    assert http.post(f"/api/products/{name}/invoke", json={"items": [[[1]]], "s": "y" * 65536}).json()["result"]["n"] == 1


def test_one_product_cannot_hold_every_kernel(http, limited, gate):
    held = publish(http, [("", gate.code), ("output", "'released'")])
    quick = publish(http, ECHO)
    waiting = ("nbmesh_queue_depth", (("queue", "concurrency"),))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(httpx.post, f"{limited.url}/api/products/{held}/invoke", json={}, timeout=60) for _ in range(2)]
        # Pool of 2, default cap 1 per product: one run holds a kernel at the gate, the other waits its turn...
        wait_for(lambda: metrics(http)[waiting] == 1, what="the second run to wait for its turn")
        # ...so the other product is served by the kernel kept free, and the cap still holds the second run.
        assert invoke(http, quick, s="served")["result"]["s"] == "served"
        assert not any(f.done() for f in runs) and metrics(http)[waiting] == 1
        gate.open()
        assert [f.result().json()["result"] for f in runs] == ["released", "released"]
    assert metrics(http)[waiting] == 0


def test_displays_within_the_limit_are_kept_in_the_executed_notebook(http):
    name = publish(http, [("", "from IPython.display import display, HTML\ndisplay(HTML('<b>shown</b>'))\nprint('printed')"), ("output", "'ok'")])
    run = http.post(f"/api/products/{name}/invoke", json={}).json()
    assert run["status"] == "succeeded"
    cells = http.get(f"/api/runs/{run['run_id']}/notebook").json()["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert any(o["output_type"] == "display_data" and "<b>shown</b>" in o["data"]["text/html"] for o in outputs)
    assert any(o["output_type"] == "stream" and "printed" in o["text"] for o in outputs)
