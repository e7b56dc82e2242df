"""How runs execute: parameters as data, isolation, setup once, crashes, restarts, concurrency."""

from __future__ import annotations

import concurrent.futures
import json
import signal

import httpx
import pytest

from tests.conftest import JSON, invoke, publish, settled_pool, stored_status, wait_for, wait_run

ECHO = [("parameters", 's = ""  # any text'), ("output", "{'s': s, 'len': len(s)}")]

INJECTIONS = [
    'a"; import os; os._exit(1); "',
    "a'; import os; os._exit(1); '",
    '"""; import os; os._exit(1); """',
    "'''; __import__('os')._exit(1); '''",
    "back\\slash\\n\\\\",
    "new\nline\r\n\t",
    "__import__('os').system('touch /tmp/nbmesh-pwned')",
    "{__import__('os')._exit(1)}",
    "\\u0022; __import__('os')._exit(1) #",
    "\x00nul and emoji 🎉",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_string_parameters_are_data(http, text):
    name = publish(http, ECHO)
    run = invoke(http, name, s=text)
    assert run["status"] == "succeeded", run
    assert run["result"] == {"s": text, "len": len(text)}


def test_injection_in_list_and_dict_values(http):
    name = publish(http, [("parameters", "items: list = []\nmeta: dict = {}"), ("output", "[items, meta]")])
    evil = {"k'\"": ["\"); __import__('os')._exit(1) #", {"\n": "'''"}]}
    run = invoke(http, name, items=list(evil["k'\""]), meta=evil)
    assert run["result"] == [evil["k'\""], evil]


def test_runs_share_nothing_but_setup(http):
    cells = [
        ("setup", "CACHE = {'loaded': 1}\nCOUNT = 0"),
        ("parameters", "tag = 'a'"),
        ("", "leak = globals().get('made_by_run')\nmade_by_run = tag\nCOUNT = COUNT + 1\nCACHE = 'rebound'"),
        ("output", "{'leak': leak, 'count': COUNT, 'cache': CACHE}"),
    ]
    name = publish(http, cells)
    first = invoke(http, name, tag="one")["result"]
    second = invoke(http, name, tag="two")["result"]
    assert first == {"leak": None, "count": 1, "cache": "rebound"}
    assert second == first, "names made or rebound by a run must be gone before the next"


def test_setup_runs_once_per_kernel(http):
    # The sandbox hides the test's files from kernels: setup counts itself in the kernel process.
    cells = [
        ("setup", "import builtins, os\nbuiltins.setups = getattr(builtins, 'setups', 0) + 1\nKERNEL = os.urandom(8).hex()"),
        ("output", "[KERNEL, __import__('builtins').setups]"),
    ]
    name = publish(http, cells)
    settled_pool(http)  # the kernel prepared for the product after its publish is idle again
    results = [invoke(http, name)["result"] for _ in range(10)]
    assert all(setups == 1 for _, setups in results), f"setup ran more often than once per kernel: {results}"
    assert len({kernel for kernel, _ in results}) == 1  # the prepared kernel served every call


def test_warm_flag(http):
    name = publish(http, ECHO)
    invoke(http, name)  # cold, or prepared by the prewarm after the publish if a kernel was free for it
    assert [invoke(http, name)["warm"] for _ in range(2)] == [True, True]


@pytest.mark.parametrize(
    "crash",
    ["import os\nos._exit(3)", "import ctypes\nctypes.string_at(0)", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"],
)
def test_dead_kernel_fails_run_and_is_replaced(http, crash):
    name = publish(http, [("", crash), ("output", "1")])
    assert invoke(http, name, status=500)["error"]["ename"] == "KernelDied"
    good = publish(http, ECHO)
    assert invoke(http, good, s="after")["result"]["s"] == "after"
    # The replacement joins the pool: every kernel (those serving products and the spare) is idle again.
    settled_pool(http, 30)


def test_uninterruptible_hang_restarts_kernel(http):
    # A signal handler that ignores SIGINT makes the interrupt useless: the pool must restart.
    cells = [("", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"), ("output", "1")]  # product code: the hang
    name = publish(http, cells, timeout=1)
    restarts = http.get("/healthz").json()["pool"]["restarts"]
    invoke(http, name, status=504)
    good = publish(http, ECHO)
    assert invoke(http, good, s="ok")["result"]["s"] == "ok"
    assert settled_pool(http)["restarts"] == restarts + 1


def test_more_requests_than_kernels(http):
    # Product code sleeps: each run holds its kernel a moment, so the requests queue for kernels.
    name = publish(http, [("parameters", "i = 0"), ("", "import time\ntime.sleep(0.2)"), ("output", "i * i")])
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: httpx.post(f"{http.base_url}/api/products/{name}/invoke", json={"i": i}, timeout=60).json(), range(8)))
    assert [r["result"] for r in results] == [i * i for i in range(8)]


def test_more_products_than_kernels_lru(http):
    names = [publish(http, [("setup", f"WHO = {i}"), ("output", "WHO")]) for i in range(3)]
    for _ in range(2):
        for i, name in enumerate(names):
            assert invoke(http, name)["result"] == i


def test_restart_keeps_products_and_runs_and_settles_unfinished(fresh_runtime, tmp_path):
    store = str(tmp_path / "durable")
    rt = fresh_runtime("--pool-size", "1", store=store)
    with rt.client() as http:
        name = publish(http, ECHO)
        slow = publish(http, [("", "import time\ntime.sleep(30)"), ("output", "1")])  # product code: still running at the kill
        done = invoke(http, name, s="kept")
        running = http.post(f"/api/products/{slow}/runs", json={}).json()["run_id"]
        queued = http.post(f"/api/products/{name}/runs", json={"s": "later"}).json()["run_id"]
        # The API shows "running" a moment before the store does: kill only once the store has it.
        wait_for(lambda: stored_status(store, running) == "running", what="the running state in the store")
    rt.kill()
    rt2 = fresh_runtime("--pool-size", "1", store=store)
    with rt2.client() as http:
        assert http.get(f"/api/products/{name}").json()["version"] == 1
        assert http.get(f"/api/runs/{done['run_id']}").json()["result"]["s"] == "kept"
        assert http.get(f"/api/runs/{done['run_id']}/notebook").status_code == 200
        stopped = http.get(f"/api/runs/{running}").json()
        assert stopped["status"] == "failed" and stopped["error"]["ename"] == "RuntimeStopped"
        resumed = wait_run(http, queued)
        assert resumed["status"] == "succeeded" and resumed["result"]["s"] == "later"
        assert invoke(http, name, s="again")["result"]["s"] == "again"


def test_store_files_are_whole_json(fresh_runtime, tmp_path):
    store = tmp_path / "s"
    rt = fresh_runtime("--pool-size", "1", store=str(store))
    with rt.client() as http:
        name = publish(http, ECHO)
        for i in range(5):
            invoke(http, name, s=str(i))
    rt.stop(signal.SIGTERM)
    files = [p for p in store.rglob("*") if p.is_file() and p.suffix in (".json", ".ipynb")]
    assert len(files) == 1 + 5 * 2  # the version, and each run's record and notebook
    for path in files:
        json.loads(path.read_text())
    assert not [p for p in store.rglob(".tmp-*")]


def test_replicas_sharing_a_store_see_each_others_publishes(fresh_runtime, tmp_path):
    store = str(tmp_path / "shared")
    a = fresh_runtime("--pool-size", "1", "--catalog-sync", "0.3", store=store)
    b = fresh_runtime("--pool-size", "1", "--catalog-sync", "0.3", store=store)
    with a.client() as on_a, b.client() as on_b:
        name = publish(on_a, ECHO)
        wait_for(lambda: on_b.get(f"/api/products/{name}").status_code == 200, 10, "replica b to see the publish")
        assert invoke(on_b, name, s="via b")["result"]["s"] == "via b"
        assert on_b.delete(f"/api/products/{name}", headers=JSON).status_code == 204
        wait_for(lambda: on_a.get(f"/api/products/{name}").status_code == 404, 10, "replica a to see the unpublish")


def test_a_broken_stored_product_does_not_stop_the_runtime(fresh_runtime, tmp_path):
    store = tmp_path / "broken"
    rt = fresh_runtime("--pool-size", "1", store=str(store))
    with rt.client() as http:
        good = publish(http, ECHO)
        bad = publish(http, ECHO)
    rt.stop()
    (store / "products" / bad / "versions" / "00000001.json").write_text("{half a record")
    rt2 = fresh_runtime("--pool-size", "1", store=str(store))
    with rt2.client() as http:
        assert invoke(http, good, s="still here")["result"]["s"] == "still here"
        assert http.get(f"/api/products/{bad}").status_code == 404


@pytest.mark.slow
def test_corrupt_run_records_are_reported_and_harm_nothing_else(fresh_runtime, tmp_path):
    store = tmp_path / "corrupt"
    rt = fresh_runtime("--pool-size", "1", store=str(store))
    with rt.client() as http:
        name = publish(http, ECHO)
        first, second = (invoke(http, name, s=s)["run_id"] for s in ("one", "two"))
        queued = http.post(f"/api/products/{name}/runs", json={"s": "q"}).json()["run_id"]
        wait_run(http, queued)
    rt.stop()
    (store / "runs" / f"{first}.json").write_text('["not", "a", "run"]')
    (store / "runs" / f"{queued}.json").write_text("{torn")
    (store / "pending" / queued).write_text("")
    rt2 = fresh_runtime("--pool-size", "1", store=str(store))
    with rt2.client() as http:
        broken = http.get(f"/api/runs/{first}")
        assert broken.status_code == 500 and f"runs/{first}.json" in broken.json()["error"]
        assert http.get(f"/api/runs/{second}").json()["result"]["s"] == "two"
        listed = [r["run_id"] for r in http.get(f"/api/products/{name}/runs").json()["runs"]]
        assert second in listed and first not in listed
        assert (store / "runs" / f"{first}.json").read_text() == '["not", "a", "run"]'
