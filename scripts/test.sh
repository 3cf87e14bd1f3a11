#!/usr/bin/env bash
# Runs Herald's whole test suite: unit, integration, crash, the store conformance suite
# (SQLite, and PostgreSQL when one is reachable), multi-node, and the Svix SDK end-to-end
# tests (Python and JavaScript), and the browser tests of the web pages. Creates (once) a Python venv in target/sdk-venv with the official `svix` SDK and
# an OpenAPI validator (the e2e test also checks the served OpenAPI document).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import svix, openapi_spec_validator' 2>/dev/null; then
    echo "== creating $venv with the svix SDK"
    mkdir -p target
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'svix==2.9.1' 'openapi-spec-validator==0.9.0'
fi
export HERALD_TEST_PYTHON="$PWD/$venv/bin/python"

# The official Svix JavaScript SDK, for the second SDK end-to-end test, and
# playwright-core, which drives Debian's Chromium (/usr/bin/chromium, installed by
# `apt-get install chromium`; .ci/run does it) in the console and portal browser tests.
js=target/js-sdk
if [ ! -f "$js/node_modules/svix/package.json" ] || [ ! -f "$js/node_modules/playwright-core/package.json" ]; then
    echo "== installing the svix JavaScript SDK and playwright-core into $js"
    mkdir -p "$js"
    npm install --silent --no-audit --no-fund --prefix "$js" svix@1.99.1 playwright-core@1.65.1
fi
export HERALD_TEST_NODE_PATH="$PWD/$js/node_modules"

# Debian's Chromium, for the browser tests of the console and portal.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing Debian's chromium for the browser tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "The browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    fi
fi

# PostgreSQL: the store conformance suite and the multi-node tests run against it when
# HERALD_TEST_DATABASE_URL is set. When it is not, and a PostgreSQL answers on
# 127.0.0.1:5432 (user postgres), use it; otherwise those tests say they were skipped.
if [ -z "${HERALD_TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
    && pg_isready -q -h 127.0.0.1 -p 5432 -U postgres 2>/dev/null; then
    export HERALD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    echo "== PostgreSQL found on 127.0.0.1:5432: its tests run too"
fi

if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
