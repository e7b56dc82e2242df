"""Retiring kernels when a run needs one for another product version and the pool is full.

A kernel serves one product version for life. With no spare to claim, a run for a version no idle
kernel serves retires the least recently used idle kernel and waits for its fresh replacement; when
every kernel is busy it waits for one to come back. Never a hang: each request here has a short
timeout of its own, so a run that waits for nothing fails the test at once.
"""

from __future__ import annotations

import concurrent.futures

import httpx

from tests.conftest import invoke, make_notebook, publish, settled_pool

# Far above a kernel start and a run (about 1 s here), far below the suite's timeout.
REQUEST_TIMEOUT = 30


def echo(name: str, tag: str) -> dict:
    """A product answering ``[tag, n]``: which version served a run, and with which parameter."""
    return make_notebook([("parameters", "n: int = 0"), ("output", f"[{tag!r}, n]")], name)


def client(rt) -> httpx.Client:
    return httpx.Client(base_url=rt.url, timeout=REQUEST_TIMEOUT)


def test_a_new_version_retires_the_idle_kernel_of_the_old_one_without_a_spare(fresh_runtime):
    rt = fresh_runtime("--pool-size", "1", "--spare-kernels", "0")
    with client(rt) as http:
        publish(http, echo("retire-v", "v1"))
        assert invoke(http, "retire-v", n=1)["result"] == ["v1", 1]
        before = settled_pool(http)
        publish(http, echo("retire-v", "v2"))  # a republish with a change: version 2
        run = invoke(http, "retire-v", n=2)
        assert (run["version"], run["result"], run["warm"]) == (2, ["v2", 2], False)
        after = settled_pool(http)
        assert after["retired"] == before["retired"] + 1  # the kernel of version 1, idle and least recently used
        assert (after["serving"], after["idle"]) == (1, 1)


def test_two_products_alternate_on_one_kernel_without_a_spare(fresh_runtime):
    rt = fresh_runtime("--pool-size", "1", "--spare-kernels", "0")
    with client(rt) as http:
        for name in ("alt-a", "alt-b"):
            publish(http, echo(name, name))
        results = [invoke(http, name, n=i)["result"] for i, name in enumerate(["alt-a", "alt-b"] * 3)]
        assert results == [[name, i] for i, name in enumerate(["alt-a", "alt-b"] * 3)]
        assert settled_pool(http)["retired"] >= 5  # every call after the first needed the other product's kernel


def test_three_products_round_robin_on_two_kernels(fresh_runtime):
    for spares in ("0", "1"):
        rt = fresh_runtime("--pool-size", "2", "--spare-kernels", spares)
        with client(rt) as http:
            names = [f"rr{spares}-{i}" for i in range(3)]
            for name in names:
                publish(http, echo(name, name))
            order = names * 3
            assert [invoke(http, name, n=i)["result"] for i, name in enumerate(order)] == [[name, i] for i, name in enumerate(order)]
            pool = settled_pool(http)
            assert pool["serving"] <= 2 and pool["retired"] >= 6, pool
        rt.stop()


def test_a_run_waits_while_the_only_kernel_is_busy_with_another_product(fresh_runtime):
    rt = fresh_runtime("--pool-size", "1", "--spare-kernels", "0")
    with client(rt) as http:
        publish(http, make_notebook([("parameters", "n: int = 0"), ("", "import time\ntime.sleep(1)"), ("output", "['slow', n]")], "busy-slow"))
        publish(http, echo("busy-fast", "fast"))
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            calls = [ex.submit(invoke, http, name, n=i) for i, name in enumerate(["busy-slow", "busy-fast"] * 2)]
            results = [c.result()["result"] for c in calls]
        assert results == [["slow", 0], ["fast", 1], ["slow", 2], ["fast", 3]]
        assert settled_pool(http)["serving"] == 1
