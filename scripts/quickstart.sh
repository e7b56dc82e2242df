#!/usr/bin/env bash
# Quick start: install nbmesh into .venv, serve the example products, invoke each once, keep serving.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${NBMESH_PORT:-8765}"
export NBMESH_URL="http://127.0.0.1:${PORT}"

# Kernels run inside Debian's bubblewrap sandbox; without it nbmesh still runs, uncontained, and says so.
if ! command -v bwrap >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's bubblewrap (the kernels' sandbox)…"
  apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

# The examples carry their data files (metadata.nbmesh.files): `nbmesh publish` sends them along.
.venv/bin/nbmesh serve --port "$PORT" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT INT TERM
for _ in $(seq 120); do
  curl -fsS "$NBMESH_URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "nbmesh serve did not start" >&2; exit 1; }
  sleep 0.5
done

.venv/bin/nbmesh publish notebooks/*.ipynb
for product in $(.venv/bin/python -c 'import kernel_runtime; [print(p["name"]) for p in kernel_runtime.Client().products()]'); do
  echo "== nbmesh invoke $product"
  .venv/bin/nbmesh invoke "$product" | head -n 20
done
echo
echo "nbmesh is serving on $NBMESH_URL — try:"
echo "  curl -s -X POST $NBMESH_URL/api/products/weather-summary/invoke -H 'Content-Type: application/json' -d '{\"year\": 2014}'"
echo "Press Ctrl-C to stop."
wait "$server"
