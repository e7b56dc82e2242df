"""``GET /metrics``: the runtime in Prometheus text format (docs/operations.md, "Observability").

Runs are counted as they finish (:meth:`Metrics.observe` is one of the
runtime's run-finished hooks): the invoke path pays one counter increment and
one histogram observation, no more. Everything that is state rather than an
event (kernels by state, restarts, queue depths, products) is read only when
Prometheus scrapes, by a custom collector, through the callables it is given.

Each app has a registry of its own rather than prometheus-client's global
one, so several runtimes in one process (tests, embedding) do not mix.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..kernels.state import KernelState
from ..model.records import Run
from ..runtime.cache import ResultCache

# Warm invocations take milliseconds, cold ones (setup cells) seconds, and timeouts up to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _StateCollector(Collector):
    """Pool and queue state, and the result cache's counts, read at scrape time."""

    def __init__(
        self,
        pool_state: Callable[[], Mapping[str, Any]],
        queue_depths: Callable[[], Mapping[str, int]],
        products: Callable[[], int],
        cache: ResultCache | None,
    ) -> None:
        self.pool_state = pool_state
        self.queue_depths = queue_depths
        self.products = products
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        state = self.pool_state()
        kernels = GaugeMetricFamily("nbmesh_kernels", "Kernels in the pool by state.", labels=["state"])
        for name in get_args(KernelState):
            kernels.add_metric([name], state[name])
        yield kernels
        yield GaugeMetricFamily("nbmesh_spare_kernels", "Started kernels that serve no product yet.", value=state["spare"])
        yield CounterMetricFamily(
            "nbmesh_kernel_restarts", "Kernels replaced after dying, hanging or being tampered with.", value=state["restarts"]
        )
        yield CounterMetricFamily(
            "nbmesh_kernel_retirements",
            "Kernels shut down on purpose: least recently used, or after a run that patched the runner, called exit() or left threads.",
            value=state["retired"],
        )
        yield GaugeMetricFamily(
            "nbmesh_kernel_start_failing", "1 while kernels cannot be started (runs that need one get 503).",
            value=int(state["start_error"] is not None),
        )
        depth = GaugeMetricFamily(
            "nbmesh_queue_depth",
            "Runs waiting: 'background' for a worker, 'concurrency' for their product's concurrency limit.",
            labels=["queue"],
        )
        depths = self.queue_depths()
        depth.add_metric(["background"], depths["background"])
        depth.add_metric(["concurrency"], depths["concurrency"])
        yield depth
        yield GaugeMetricFamily("nbmesh_products", "Products published.", value=self.products())
        if self.cache is not None:
            # Counted only for products with a cache_ttl: a miss is an invoke that ran because no fresh result was kept.
            for what, counts in (("hits", self.cache.hits), ("misses", self.cache.misses)):
                family = CounterMetricFamily(f"nbmesh_result_cache_{what}", f"Result cache {what} by product.", labels=["product"])
                for product, count in sorted(counts.items()):
                    family.add_metric([product], count)
                yield family
            yield GaugeMetricFamily("nbmesh_result_cache_entries", "Results the result cache holds.", value=len(self.cache))


class Metrics:
    """``pool_state``, ``queue_depths``, ``products`` and ``cache`` are read at scrape time; register
    :meth:`observe` as a run-finished hook to count runs."""

    def __init__(
        self,
        pool_state: Callable[[], Mapping[str, Any]],
        queue_depths: Callable[[], Mapping[str, int]],
        products: Callable[[], int],
        cache: ResultCache | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "nbmesh_runs", "Finished runs by product and final status.", ["product", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "nbmesh_invoke_duration_seconds",
            "Time from asking for a kernel to the run's answer, by product (includes waiting for a kernel).",
            ["product"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(pool_state, queue_depths, products, cache))

    def observe(self, run: Run) -> None:
        self.runs.labels(run.product, run.status).inc()
        if run.duration_ms is not None:
            self.latency.labels(run.product).observe(run.duration_ms / 1000)

    def render(self, may_read: Callable[[str], bool] | None = None) -> tuple[bytes, str]:
        """The text format; with ``may_read``, only the per-product series of the products it lets through."""
        source = self.registry if may_read is None else _Readable(self.registry, may_read)
        return generate_latest(source), CONTENT_TYPE_LATEST  # type: ignore[arg-type]


class _Readable:
    """A registry's metrics without the samples of products the caller may not read (a listing, filtered)."""

    def __init__(self, registry: CollectorRegistry, may_read: Callable[[str], bool]) -> None:
        self.registry = registry
        self.may_read = may_read

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            kept.samples = [s for s in metric.samples if "product" not in s.labels or self.may_read(s.labels["product"])]
            yield kept
