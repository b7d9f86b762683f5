#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up the independent MCP client that
# tests/it/interop_python.rs drives (the official Python SDK, pinned in
# tests/interop/requirements.txt, in a venv under target/) and the AJV
# validator tests/it/interop_ajv.rs runs (pinned in tests/interop/package.json),
# then cargo test.
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/interop-venv
if ! "$venv/bin/python" -c "import mcp" 2>/dev/null; then
  echo "setting up the Python MCP client for the interop tests in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi
if [ ! -d tests/interop/node_modules/ajv ]; then
  echo "installing AJV for the schema interop test in tests/interop/node_modules" >&2
  (cd tests/interop && npm ci --silent --no-audit --no-fund)
fi
exec cargo test --locked "$@"
