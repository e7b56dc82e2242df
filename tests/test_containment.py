"""docs/security.md, "Containment of product code": each attack of issue 9, made from product code
against a real runtime whose kernels run in bubblewrap, and what stops it.

The runtimes below run with a token (also in their environment, with a store credential), and pass
one variable to kernels with --kernel-env. Tests that depend on how many kernels there are run with
pool size 1 (every product switch retires a kernel) and 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psutil
import pytest

from kernel_runtime.client import Client
from kernel_runtime.errors import KernelError, KernelUnavailable
from tests.conftest import ROOT, Runtime, free_port, invoke, publish, settled_pool, unique, wait_for

TOKEN = f"token-{os.urandom(8).hex()}"
AWS_SECRET = f"aws-secret-{os.urandom(8).hex()}"
PASSED = f"passed-{os.urandom(4).hex()}"
ENV = {"NBMESH_TOKEN": TOKEN, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "NBMESH_TEST_PASSED": PASSED}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ECHO = [("parameters", "x = 0"), ("output", "x")]


def start(tmp_path_factory, *args: str) -> Runtime:
    store = tmp_path_factory.mktemp("contained")
    rt = Runtime(store=str(store), port=free_port(), env=ENV, args=["--token", TOKEN, "--kernel-env", "NBMESH_TEST_PASSED", *args])
    return rt.start()


@pytest.fixture(scope="module")
def pool1(tmp_path_factory):
    rt = start(tmp_path_factory, "--pool-size", "1")
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def pool2(tmp_path_factory):
    rt = start(tmp_path_factory, "--pool-size", "2")
    yield rt
    rt.stop()


@pytest.fixture(params=[1, 2], ids=["pool1", "pool2"])
def rt(request) -> Runtime:
    return request.getfixturevalue(f"pool{request.param}")


def client(rt: Runtime) -> httpx.Client:
    return rt.client(headers=AUTH)


def pool(http) -> dict:
    return http.get("/healthz").json()["pool"]


def kernels(rt: Runtime) -> list[psutil.Process]:
    """The kernel processes themselves (inside their sandboxes), seen from outside."""
    return [p for p in psutil.Process(rt.proc.pid).children(recursive=True)
            if "kernel_runtime.kernels.launcher" in p.cmdline() and p.cmdline()[0] != "bwrap"]


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# Product code: the spy's thread polls (its sleep is the spy's, not the test's synchronisation).
SPY_SETUP = """
import threading, time
import kernel_runtime.kernels.runner as r
r.SPIED = getattr(r, "SPIED", [])
_run = r.Runner.run
def spying_run(self, params_json, *args):
    r.SPIED.append(params_json)
    return _run(self, params_json, *args)
r.Runner.run = spying_run
_to_json = r.to_json
r.to_json = lambda value, _depth=0: "pwned" if isinstance(value, dict) and "b" in value else _to_json(value, _depth)
def watch(ns=get_ipython().user_ns):
    while True:
        r.SPIED.append(repr({k: v for k, v in list(ns.items()) if isinstance(v, str)}))
        del r.SPIED[:-200]
        time.sleep(0.005)
threading.Thread(target=watch, daemon=True, name="spy").start()
"""


def test_a_product_cannot_spy_on_or_change_another(rt):
    key, private = f"sk-{os.urandom(8).hex()}", f"setup-data-{os.urandom(8).hex()}"
    with client(rt) as http:
        spy = publish(http, [("setup", SPY_SETUP), ("output", "'\\n'.join(__import__('kernel_runtime.kernels.runner').kernels.runner.SPIED)")])
        invoke(http, spy)
        # Fill every kernel that may serve products, so the victim's needs the spy's old kernel.
        for _ in range(pool(http)["size"] - 1):
            invoke(http, publish(http, ECHO))
        victim = publish(http, [
            ("setup", f"PRIVATE = {private!r}"),
            ("parameters", "api_key: str = ''"),
            ("output", "{'b': len(api_key), 'private': PRIVATE, 'runner': type(__nbmesh__).run.__qualname__,"
                       " 'threads': sorted(t.name for t in __import__('threading').enumerate())}"),
        ])
        result = invoke(http, victim, api_key=key)["result"]
        assert result["b"] == len(key) and result["private"] == private, "the spy changed the victim's result"
        assert result["runner"] == "Runner.run" and "spy" not in result["threads"]
        seen = invoke(http, spy)["result"]
        assert key not in seen and private not in seen


def test_a_sabotaged_runner_is_replaced_and_hurts_no_one(rt):
    sabotage = "if sabotage:\n    import kernel_runtime.kernels.runner as r\n    r.Runner.run = lambda *a: 1/0"
    with client(rt) as http:
        saboteur = publish(http, [("parameters", "sabotage = False\nx = 0"), ("", sabotage), ("output", "x")])
        other = publish(http, ECHO)
        assert invoke(http, saboteur, sabotage=True, x=1)["result"] == 1  # the patch bites after its own run
        for x in range(2, 5):
            assert invoke(http, saboteur, x=x)["result"] == x
            assert invoke(http, other, x=x)["result"] == x
        state = settled_pool(http)
        assert state["start_error"] is None and state["busy"] == 0
        assert len(kernels(rt)) == state["size"] + state["spare_target"]  # healthz counts the kernels there are


def test_a_stale_or_forged_reply_is_never_an_answer(rt):
    # Patching the runner instance escapes the runner's own check: its next reply is the previous one.
    cells = [("parameters", "sabotage = False\nx = 0"), ("", "if sabotage:\n    __nbmesh__.run = lambda *a: None"), ("output", "x")]
    with client(rt) as http:
        saboteur = publish(http, cells)
        other = publish(http, ECHO)
        assert invoke(http, saboteur, sabotage=True, x=1)["result"] == 1
        restarts = pool(http)["restarts"]
        run = invoke(http, saboteur, status=500, x=2)
        assert run["error"]["ename"] == "KernelTampered" and "replaced" in run["error"]["evalue"]
        assert pool(http)["restarts"] == restarts + 1
        assert invoke(http, saboteur, x=3)["result"] == 3
        assert invoke(http, other, x=4)["result"] == 4


def test_exit_answers_its_caller_and_the_next_caller_gets_a_live_kernel(rt):
    with client(rt) as http:
        # Product code: exit() ends the kernel a moment after the cell, which sleeps meanwhile.
        leaver = publish(http, [("", "import time\nexit()\ntime.sleep(0.3)"), ("output", "'answered'")])
        other = publish(http, ECHO)
        invoke(http, other, x=1)
        assert invoke(http, leaver)["result"] == "answered"
        assert invoke(http, leaver)["result"] == "answered"  # on a new kernel: the one that exited is never handed out
        assert invoke(http, other, x=2)["result"] == 2


def test_a_kernel_killed_while_idle_is_replaced_before_a_run_is_given_to_it(pool1):
    with client(pool1) as http:
        name = publish(http, ECHO)
        settled_pool(http)
        assert invoke(http, name, x=1)["warm"] is True
        victims = kernels(pool1)
        sandboxes = psutil.Process(pool1.proc.pid).children()  # the bwrap processes the runtime started
        for proc in victims:
            proc.kill()  # kill -9 of every kernel: the one serving the product and the spare
        # Once the sandboxes around them have exited (not yet reaped by the runtime), ask at once.
        wait_for(lambda: all(gone(p) for p in sandboxes), 10, "the sandboxes to exit")
        run = invoke(http, name, x=2)
        assert run["result"] == 2 and run["warm"] is False


def test_threads_left_by_a_run_retire_its_kernel(pool2):
    cells = [
        ("parameters", "leave = False"),
        # Product code: the thread it leaves sleeps on after the run.
        ("", "import threading, time\nif leave:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()"),
        ("output", "'ok'"),
    ]
    with client(pool2) as http:
        name = publish(http, cells)
        invoke(http, name)
        assert invoke(http, name)["warm"] is True
        assert invoke(http, name, leave=True)["result"] == "ok"
        assert invoke(http, name)["warm"] is False  # a fresh kernel: the thread could have seen this run
        assert invoke(http, name)["warm"] is True


def test_a_cold_product_is_served_by_a_spare_kernel(pool1):
    with client(pool1) as http:
        cold = publish(http, [("setup", "import time\nSTARTED = time.time()"), ("output", "STARTED")])
        invoke(http, publish(http, ECHO))  # with pool size 1, this retires the first product's kernel
        before = settled_pool(http)
        assert before["spare"] == 1
        run = invoke(http, cold)
        assert run["status"] == "succeeded" and run["warm"] is False
        after = pool(http)
        assert after["spares_used"] == before["spares_used"] + 1 and after["retired"] == before["retired"] + 1
        assert settled_pool(http)["spare"] == 1  # a new spare replaces the one used


def test_a_timeout_interrupts_the_kernel_inside_its_sandbox(pool2):
    # The sandbox is a wrapper process: interrupts travel as messages, and the kernel survives them.
    cells = [("parameters", "hang = False"), ("", "import time\nif hang:\n    time.sleep(60)"), ("output", "'ok'")]  # product code: the hang
    with client(pool2) as http:
        name = publish(http, cells, timeout=1)
        invoke(http, name)
        restarts = pool(http)["restarts"]
        r = http.post(f"/api/products/{name}/invoke", json={"hang": True})
        assert r.status_code == 504
        run = invoke(http, name)
        assert run["warm"] is True and pool(http)["restarts"] == restarts


OBSERVE = """
import os
def attempt(fn):
    try:
        fn()
        return "ok"
    except BaseException as exc:
        return type(exc).__name__
def read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
seen = {
    "env": dict(os.environ),
    "uid": os.getuid(),
    "pids": pids,
    "proc": " ".join(read(f"/proc/{p}/{f}") for p in pids for f in ("cmdline", "environ")),
    "list_store": attempt(lambda: os.listdir(store)),
    "read_run": attempt(lambda: open(run_record).read()),
    "read_repo": attempt(lambda: open(os.path.join(repo, "pyproject.toml")).read()),
    "shadow": attempt(lambda: open("/etc/shadow").read()),
    "kill_kernels": [attempt(lambda p=p: os.kill(p, 9)) for p in other_kernels],
    "kill_runtime": attempt(lambda: os.kill(runtime_pid, 9)),
}
victim = os.path.join(store, "products", "victim", "versions")
def plant():
    os.makedirs(victim, exist_ok=True)
    with open(os.path.join(victim, "00000099.json"), "w") as fh:
        fh.write("{}")
plant_result = attempt(plant)
"""


def test_product_code_sees_nothing_of_the_runtime(pool1):
    params = "runtime_pid = 0\nother_kernels = []\nstore = ''\nrun_record = ''\nrepo = ''"
    with client(pool1) as http:
        name = publish(http, [("parameters", params), ("", OBSERVE), ("output", "seen")])
        run_record = invoke(http, publish(http, ECHO))["run_id"]
        wait_for(lambda: list(Path(pool1.store).glob(f"runs/{run_record}.json")), 10, "the run record")
        others = [p.pid for p in kernels(pool1)]  # the spare, and the kernel about to be retired
        seen = invoke(http, name, runtime_pid=pool1.proc.pid, other_kernels=others, store=pool1.store,
                      run_record=f"{pool1.store}/runs/{run_record}.json", repo=str(ROOT))["result"]
        assert pool1.proc.poll() is None and http.get("/healthz").status_code == 200, "the product killed the runtime"
    env = seen["env"]
    assert "NBMESH_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env and env["NBMESH_TEST_PASSED"] == PASSED
    assert TOKEN not in seen["proc"] and AWS_SECRET not in seen["proc"], "the token is readable in /proc"
    assert pool1.proc.pid not in seen["pids"] and not set(others) & set(seen["pids"]) and len(seen["pids"]) <= 3
    assert seen["kill_runtime"] == "ProcessLookupError"
    assert seen["kill_kernels"] == ["ProcessLookupError"] * len(others)
    assert seen["list_store"] == seen["read_run"] == seen["read_repo"] == "FileNotFoundError"
    assert seen["shadow"] == "PermissionError" and seen["uid"] == 65534
    assert not (Path(pool1.store) / "products" / "victim").exists(), "the product wrote into the store"


def test_kernel_output_is_marked_in_the_runtime_log(pool1):
    mark = unique("forged")
    code = (
        "import os\n"
        f"os.write(1, b'{{\"event\": \"run\", \"run_id\": \"{mark}\"}}\\n')\n"
        f"os.write(2, b'nbmesh answers on http://{mark}\\n\\x1b[2K\\r{mark} after a carriage return\\n')\n"
    )
    with client(pool1) as http:
        name = publish(http, [("", code), ("output", "'ok'")])
        invoke(http, name)
    lines = wait_for(lambda: (found := [l for l in pool1.log.read_text().splitlines() if mark in l]) and len(found) >= 3 and found,
                     10, "the kernel's output in the log")
    for line in lines:
        assert line.startswith("[kernel ") and f"{name}@1 std" in line, line
        assert "\x1b" not in line and "\r" not in line
    assert any("\\x1b[2K\\r" in line for line in lines)


def test_kernels_that_cannot_start_fail_runs_fast_with_503(fresh_runtime):
    # A real fault: a memory limit (1 MiB) no Python interpreter can start in.
    rt = fresh_runtime("--pool-size", "1", "--kernel-memory", "1")
    with rt.client() as http:
        name = publish(http, ECHO)
        r = http.post(f"/api/products/{name}/invoke", json={}, timeout=10)
        assert r.status_code == 503, r.text
        assert r.json()["type"] == "KernelUnavailable"
        error = r.json()["error"]
        # Why, in the kernel's own last words (an import that cannot map its library, here).
        assert "none can be started now" in error and "its last output:" in error, error
        state = pool(http)
        assert state["idle"] == 0 and state["start_error"] in error
        # Starting is retried, with backoff, for as long as it fails.
        wait_for(lambda: rt.log.read_text().count("starting a kernel failed (attempt 2)") >= 1, 30, "a retry")
        assert pool(http)["starting"] >= 1
    # The Python client raises what the runtime raised, not what a 503 usually is (a full queue).
    with Client(rt.url) as nbmesh, pytest.raises(KernelError) as info:
        nbmesh.run(name)
    assert type(info.value) is KernelUnavailable and "none can be started now" in info.value.message


def test_the_runtime_dying_takes_its_kernels_along(fresh_runtime):
    rt = fresh_runtime("--pool-size", "1")
    procs = psutil.Process(rt.proc.pid).children(recursive=True)
    assert len(kernels(rt)) == 2
    rt.proc.kill()  # SIGKILL: the runtime shuts nothing down itself
    rt.proc.wait()
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, f"kernel processes outlived the runtime: {alive}"


def test_healthz_says_which_containment_is_in_force(pool1, fresh_runtime):
    with client(pool1) as http:
        contained = http.get("/healthz").json()["containment"]
    assert contained["sandbox"] == "bubblewrap" and contained["user"] == "nobody"
    assert contained["environment"] == ["NBMESH_TEST_PASSED"] and contained["one_product_version_per_kernel"] is True
    bare = fresh_runtime("--pool-size", "1", "--spare-kernels", "0", "--sandbox", "none", env=ENV)
    with client(bare) as http:
        health = http.get("/healthz").json()
        assert health["containment"]["sandbox"] == "none" and "warning" in health["containment"]
        assert health["pool"]["spare_target"] == 0 and health["pool"]["idle"] == 1
        # Even unconfined, kernels get a fresh environment: no token, no store credentials.
        env = invoke(http, publish(http, [("output", "dict(__import__('os').environ)")]))["result"]
    assert "NBMESH_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
