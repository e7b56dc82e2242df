"""deploy/haproxy.cfg, the documented load balancer, run as is by Debian's haproxy in front of three replicas,
and the Compose and Kubernetes files that point it at their replicas.

The replicas share a store folder and a Redis (`--queue`); HAProxy gets their addresses through the
environment variables the file reads. Which replica served a call is read from that replica's own
/metrics (finished runs by product), asked directly, not through HAProxy.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, Runtime, free_port, metrics, publish, wait_for
from tests.test_cluster import start_replicas, version_on
from tests.test_queue import queue_redis  # noqa: F401 (a fixture: Debian's redis-server, AOF on)
from tests.test_triggers import echo

DEPLOY = ROOT / "deploy"
CONFIG = DEPLOY / "haproxy.cfg"
# Fixed names: where each lands depends only on them and the servers' names. Each replica has kernels
# for all of them, so no kernel is retired when a replica's products move to another.
PRODUCTS = [f"product-{n}" for n in range(4)]


class HAProxy:
    """Debian's haproxy in the foreground with deploy/haproxy.cfg, pointed at ``replicas``."""

    def __init__(self, replicas: list[Runtime], log: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "NBMESH_LB_BIND": f"127.0.0.1:{self.port}"}
        for number, rt in enumerate(replicas, 1):
            self.env[f"NBMESH_REPLICA{number}"] = f"127.0.0.1:{rt.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HAProxy":
        checked = subprocess.run(["haproxy", "-c", "-q", "-f", str(CONFIG)], env=self.env, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(CONFIG)], env=self.env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_for(self._answers, 10, "HAProxy to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def cluster(fresh_runtime, queue_redis, tmp_path):
    reps = start_replicas(fresh_runtime, str(tmp_path / "store"), queue_redis.url, 3, pool=len(PRODUCTS))
    lb = HAProxy(reps, tmp_path / "haproxy.log").start()
    yield reps, lb
    lb.stop()


def served(rt: Runtime, product: str) -> int:
    """Runs of ``product`` that replica ``rt`` finished since it started (its /metrics)."""
    with rt.client() as http:
        return int(metrics(http).get(("nbmesh_runs_total", (("product", product), ("status", "succeeded"))), 0))


def calls(lb: httpx.Client, product: str, count: int) -> list[dict]:
    runs = []
    for n in range(count):
        answer = lb.post(f"/api/products/{product}/invoke", json={"n": n})
        assert answer.status_code == 200, answer.text
        runs.append(answer.json())
    return runs


def where(reps: list[Runtime], products: list[str]) -> dict[str, dict[int, int]]:
    """For each product, the runs each replica (by index) finished, leaving out those with none."""
    return {p: {i: n for i, rt in enumerate(reps) if rt.proc.poll() is None and (n := served(rt, p))} for p in products}


@pytest.mark.slow
def test_a_products_calls_land_on_one_replica_and_move_only_when_it_goes(cluster):
    reps, lb = cluster
    with httpx.Client(base_url=lb.url, timeout=120) as via_lb:
        for product in PRODUCTS:
            publish(via_lb, echo(product))  # hashed like its calls: it prewarms where they will land
        for rt in reps:
            with rt.client() as direct:
                wait_for(lambda: all(version_on(direct, p) == 1 for p in PRODUCTS), 5, "every replica to serve every product")
        runs = {p: calls(via_lb, p, 4) for p in PRODUCTS}

        home = where(reps, PRODUCTS)
        assert all(len(counts) == 1 and list(counts.values()) == [4] for counts in home.values()), home
        owner = {p: next(iter(counts)) for p, counts in home.items()}
        assert len(set(owner.values())) > 1, owner  # the products spread over the replicas
        # Every call after the first found its product's kernel warm.
        assert all(run["warm"] for p in PRODUCTS for run in runs[p][1:]), runs

        # A replica dies: its products move to the others, every other product stays where it was.
        gone = owner[PRODUCTS[0]]
        reps[gone].kill()
        before = {p: {i: served(reps[i], p) for i in range(3) if i != gone} for p in PRODUCTS}
        for p in PRODUCTS:
            calls(via_lb, p, 3)
        after = {p: {i: served(reps[i], p) - before[p][i] for i in range(3) if i != gone} for p in PRODUCTS}
        for p in PRODUCTS:
            moved = {i: n for i, n in after[p].items() if n}
            if owner[p] == gone:
                assert len(moved) == 1 and list(moved.values()) == [3], (p, after)
            else:
                assert moved == {owner[p]: 3}, (p, after)

        # Back on its address, it gets its products back once its health checks pass.
        reps[gone].start()
        wait_for(lambda: calls(via_lb, PRODUCTS[0], 1) and served(reps[gone], PRODUCTS[0]) > 0, 30,
                 "the product to return to its replica")


def haproxy_accepts(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["haproxy", "-c", "-f", str(CONFIG)], env={**os.environ, **env}, capture_output=True, text=True)


def test_compose_and_kubernetes_point_haproxy_at_their_replicas():
    """The replicas haproxy.cfg's server lines name are the ones Compose and Kubernetes start, on the port they serve."""
    servers = [line.split() for line in CONFIG.read_text().splitlines() if line.strip().startswith("server ")]
    defaults = {name: address.strip('"').split("-", 1)[1].rstrip("}") for _, name, address, *_ in servers}
    variables = [address.strip('"').split("-", 1)[0].removeprefix("${") for _, _, address, *_ in servers]
    assert len(servers) == 3 and variables == ["NBMESH_REPLICA1", "NBMESH_REPLICA2", "NBMESH_REPLICA3"], servers

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    replicas = [name for name, service in compose["services"].items() if "--queue" in str(service) or "NBMESH_QUEUE" in str(service)]
    assert sorted(replicas) == sorted(address.split(":")[0] for address in defaults.values())
    assert all(f"--port', '{address.split(':')[1]}'" in str(compose["services"][address.split(":")[0]]["command"])
               for address in defaults.values())
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in compose["services"]["lb"]["volumes"]

    manifests = {doc["metadata"]["name"] + "/" + doc["kind"]: doc
                 for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())}
    statefulset = manifests["nbmesh/StatefulSet"]["spec"]
    container = statefulset["template"]["spec"]["containers"][0]
    port = container["args"][container["args"].index("--port") + 1]
    pods = [f"nbmesh-{i}.{statefulset['serviceName']}:{port}" for i in range(statefulset["replicas"])]
    lb_env = {e["name"]: e["value"] for e in manifests["nbmesh-lb/Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert [lb_env[v] for v in variables] == pods
    assert manifests["nbmesh/Service"]["spec"]["clusterIP"] == "None"  # one DNS name per pod
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["configMapGenerator"][0]["files"] == ["haproxy.cfg"]
    assert sorted(kustomization["resources"]) == sorted(f"k8s/{p.name}" for p in (DEPLOY / "k8s").glob("*.yaml"))

    # HAProxy takes the file with either set of addresses (names that do not resolve yet are no error).
    for env in ({}, {v: a for v, a in zip(variables, pods)}):
        checked = haproxy_accepts(env)
        assert checked.returncode == 0, checked.stderr
