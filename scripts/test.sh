#!/usr/bin/env bash
# Install what the tests need and run the whole suite: the extension's jest tests, then pytest
# (Python, server extension, and the browser test in Debian's Chromium). pytest's exit 5 (no tests) fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the browser test…"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x /usr/bin/bwrap ]; then
  echo "installing Debian's bubblewrap, the kernels' sandbox…"
  apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

(cd extension && jlpm install --immutable >/dev/null && jlpm test --silent)
exec python -m pytest -p no:cacheprovider "$@"
