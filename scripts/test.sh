#!/usr/bin/env bash
# Install what the tests need and run the whole suite: the extension's jest tests, then pytest
# (Python, server extension, and the browser test in Debian's Chromium). pytest's exit 5 (no tests) fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite uses for real: chromium (browser test), bubblewrap (the kernels' sandbox),
# redis-server (the replicas' shared run queue) and haproxy (the load balancer in front of replicas).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]} for the tests…"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"
# datacontract-cli judges the data contracts (tests/test_contract.py) from a venv of its own: its
# dependencies are many and pinned, and must not bend the runtime's. Made once, reused after.
if [ ! -x .venv-datacontract/bin/datacontract ]; then
  python3 -m venv .venv-datacontract
  .venv-datacontract/bin/python -m pip install --quiet 'datacontract-cli[duckdb]>=1.2'
fi
export NBMESH_DATACONTRACT="$PWD/.venv-datacontract/bin/datacontract"

(cd extension && jlpm install --immutable >/dev/null && jlpm test --silent)
exec python -m pytest -p no:cacheprovider "$@"
