"""What do the result cache and the tabular formats cost, next to a bare HTTP round trip and to JSON?

One run measures, side by side on this machine (figures from different runs are not comparable):

1. A result-cache hit: ``POST /api/products/bench-cached/invoke`` of a trivial product with
   ``cache_ttl``, already answered once, so no kernel is involved; against the floor of
   bench/invoke_latency.py, a bare Starlette+uvicorn JSON POST round trip, and against the same
   product without ``cache_ttl`` (a warm kernel round trip).
2. A 10,000-row result (4 columns: int, str, float, bool) answered from the cache by
   ``GET /api/products/bench-rows/result?format=json|csv|parquet|arrow``: the answer time of each
   format against JSON's, and the body sizes. The cache keeps the kernel out, so what is timed is
   conversion, serialization and transfer.

Subjects are measured in interleaved blocks so a change in machine load hits them alike; warm-up
calls are not counted. Timings are reported, never asserted. Every process started here is stopped
on the way out. Run it with the project's venv:

    .venv/bin/python bench/result_formats.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import invoke_latency as il  # noqa: E402  (its runtime, floor server and statistics)

ROWS = 10_000
CACHED, UNCACHED, TABLE = "bench-cached", "bench-uncached", "bench-rows"
TRIVIAL = [("parameters", "x: int = 3"), ("", "y = x * 2 + 1"), ("output", "{'x': x, 'y': y}")]
TABLE_CELLS = [
    ("parameters", f"rows: int = {ROWS}"),
    ("", "import pandas as pd\nframe = pd.DataFrame({'i': range(rows)})\nframe['label'] = 'item-' + frame['i'].astype(str)\n"
         "frame['x'] = frame['i'] * 0.5\nframe['even'] = frame['i'] % 2 == 0"),
    ("output", "frame"),
]
FORMATS = ("json", "csv", "parquet", "arrow")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def invoke_call(client: httpx.Client, name: str, cached: bool) -> Callable[[], None]:
    def call() -> None:
        run = client.post(f"/api/products/{name}/invoke", json={"x": 5}).json()
        if run.get("result", {}).get("y") != 11 or run["cached"] is not cached:
            raise RuntimeError(f"{name} answered {run}")

    return call


def format_call(client: httpx.Client, fmt: str, sizes: dict[str, int]) -> Callable[[], None]:
    def call() -> None:
        r = client.get(f"/api/products/{TABLE}/result", params={"format": fmt})
        if r.status_code != 200:
            raise RuntimeError(f"{fmt}: {r.status_code} {r.text[:300]}")
        sizes[fmt] = len(r.content)

    return call


def check_formats(client: httpx.Client) -> None:
    """Each format reads back as the same 10,000 rows (so the figures are of real answers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = f"/api/products/{TABLE}/result?format="
    frames = {
        "json": pd.DataFrame(client.get(base + "json").json()),
        "csv": pd.read_csv(io.BytesIO(client.get(base + "csv").content)),
        "parquet": pq.read_table(io.BytesIO(client.get(base + "parquet").content)).to_pandas(),
        "arrow": pa.ipc.open_stream(client.get(base + "arrow").content).read_all().to_pandas(),
    }
    for fmt, frame in frames.items():
        if frame.shape != (ROWS, 4):
            raise RuntimeError(f"{fmt} read back as {frame.shape}")
        pd.testing.assert_frame_equal(frame, frames["json"], check_dtype=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run")
    args = parser.parse_args()
    rounds, per_round, table_per_round = (3, 10, 3) if args.quick else (10, 20, 5)
    report: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(), "rows": ROWS, "command": sys.argv}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nbmesh-bench-formats-")))
        log("starting nbmesh (pool size 2) and the bare Starlette server…")
        rt = il.start_runtime(stack, folder / "store", 2)
        bare = stack.enter_context(httpx.Client(base_url=il.start_bare(stack), timeout=60))
        client = stack.enter_context(httpx.Client(base_url=rt.url, timeout=120))
        for name, cells, meta in ((CACHED, TRIVIAL, {"cache_ttl": 86400}), (UNCACHED, TRIVIAL, {}),
                                  (TABLE, TABLE_CELLS, {"cache_ttl": 86400})):
            answer = client.put(f"/api/products/{name}", json=il.make_notebook(cells, **meta))
            if answer.status_code != 201:
                raise RuntimeError(f"publishing {name}: {answer.status_code} {answer.text}")
        client.post(f"/api/products/{CACHED}/invoke", json={"x": 5})
        check_formats(client)

        log("cache hit against the bare round trip…")
        hits = il.interleaved({"bare": il.bare_call(bare), "hit": invoke_call(client, CACHED, True),
                               "miss": invoke_call(client, UNCACHED, False)}, rounds * per_round, 3, rounds)
        log(f"{ROWS:,}-row result in each format, from the cache…")
        sizes: dict[str, int] = {}
        formats = il.interleaved({fmt: format_call(client, fmt, sizes) for fmt in FORMATS}, rounds * table_per_round, 3, rounds)

    latency = {name: il.summary(samples) for name, samples in {**hits, **formats}.items()}
    report.update(latency=latency, sizes=sizes)
    p50 = {name: s["p50_ms"] for name, s in latency.items()}
    rows = [
        ("bare Starlette JSON POST (floor)", "bare", "1.00× floor"),
        ("cache hit: POST invoke, cache_ttl", "hit", f"{p50['hit'] / p50['bare']:.2f}× floor"),
        ("no cache: POST invoke, warm kernel", "miss", f"{p50['miss'] / p50['bare']:.2f}× floor"),
    ] + [(f"{ROWS:,} rows as {fmt} ({sizes[fmt] / 1024:,.0f} KiB), cached", fmt, f"{p50[fmt] / p50['json']:.2f}× JSON")
         for fmt in FORMATS]
    width = max(len(label) for label, _, _ in rows)
    print(f"\n{'subject'.ljust(width)}  {'p50 ms':>8}  {'p95 ms':>8}  ratio")
    for label, key, ratio in rows:
        print(f"{label.ljust(width)}  {latency[key]['p50_ms']:8.2f}  {latency[key]['p95_ms']:8.2f}  {ratio}")
    results = il.RESULTS / f"result_formats-{datetime.now():%Y%m%d-%H%M%S}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2))
    print(f"\nfull results: {results.relative_to(il.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
