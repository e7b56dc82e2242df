#!/usr/bin/env bash
# Quick start: install nbmesh into .venv, serve the example products, invoke each once, keep serving.
# The install's and the server's own output go to log files under .nbmesh/, named as they start.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${NBMESH_PORT:-8765}"
export NBMESH_URL="http://127.0.0.1:${PORT}"
mkdir -p .nbmesh
INSTALL_LOG=.nbmesh/install.log
SERVER_LOG=.nbmesh/serve.log

# Run "$@" with its output appended to the log $1, showing pip's latest step on one line meanwhile.
logged() {
  local log=$1 pid status line
  shift
  "$@" >>"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -t 1 ]; then
      line=$(grep -E '^ *(Collecting|Downloading|Building|Installing|Running|Successfully)' "$log" | tail -n 1 | cut -c 1-70 || true)
      printf '\r\033[K  %s' "$line"
    else
      printf '.'
    fi
    sleep 1
  done
  status=0
  wait "$pid" || status=$?
  if [ -t 1 ]; then printf '\r\033[K'; else echo; fi
  if [ "$status" != 0 ]; then
    echo "failed (exit $status); the end of $log:" >&2
    tail -n 15 "$log" >&2
    exit "$status"
  fi
}

if ! command -v node >/dev/null; then
  echo "error: Node.js is needed to install nbmesh from source (the JupyterLab extension is built at install): install it, e.g. apt-get install nodejs" >&2
  exit 1
fi
# Kernels run inside Debian's bubblewrap sandbox; without it nbmesh still runs, uncontained, and says so.
if ! command -v bwrap >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's bubblewrap (the kernels' sandbox); log: $INSTALL_LOG"
  logged "$INSTALL_LOG" sh -c 'apt-get update -qq && apt-get install -y -qq bubblewrap'
fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
echo "installing nbmesh and its dependencies into .venv (a minute or two: the JupyterLab extension is built too); log: $INSTALL_LOG"
logged "$INSTALL_LOG" .venv/bin/python -m pip install --upgrade pip
logged "$INSTALL_LOG" .venv/bin/python -m pip install --progress-bar off -e .

# The examples carry their data files (metadata.nbmesh.files): `nbmesh publish` sends them along.
echo "starting nbmesh serve on $NBMESH_URL; its log: $SERVER_LOG"
.venv/bin/nbmesh serve --port "$PORT" >"$SERVER_LOG" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT INT TERM
for _ in $(seq 120); do
  curl -fsS "$NBMESH_URL/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "nbmesh serve did not start; the end of $SERVER_LOG:" >&2
    tail -n 5 "$SERVER_LOG" >&2
    exit 1
  fi
  sleep 0.5
done

.venv/bin/nbmesh publish notebooks/*.ipynb
for product in $(.venv/bin/nbmesh list --json | .venv/bin/python -c 'import json, sys; [print(p["name"]) for p in json.load(sys.stdin)["products"]]'); do
  echo "== nbmesh invoke $product"
  .venv/bin/nbmesh invoke "$product" | head -n 20
done
echo
echo "nbmesh is serving on $NBMESH_URL (its log: $SERVER_LOG) — try:"
echo "  curl -s -X POST $NBMESH_URL/api/products/weather-summary/invoke -H 'Content-Type: application/json' -d '{\"year\": 2014}'"
echo "Press Ctrl-C to stop."
wait "$server"
