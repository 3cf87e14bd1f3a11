#!/usr/bin/env bash
# Runs Herald's whole test suite: unit, integration, crash, the store conformance suite
# (SQLite, and PostgreSQL when one is reachable), multi-node, and the Svix SDK end-to-end
# tests (Python and JavaScript), the browser tests of the web pages, and (on a full
# run) the API contract run with schemathesis (scripts/contract.sh). Creates (once) a
# Python venv in target/sdk-venv with the official `svix` SDK and an OpenAPI validator
# (the e2e test also checks the served OpenAPI document).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the suite needs before anything is built: each is installed when the script can
# (root with apt-get), or the script stops at once with the command to run.
as_root_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
need() { # need WHAT "install command": stop with the command to run
    echo "scripts/test.sh needs $1. Install it with:" >&2
    echo "    $2" >&2
    exit 1
}
rust_ok() {
    command -v rustc >/dev/null 2>&1 || return 1
    local v
    v=$(rustc --version | awk '{print $2}')
    [ "$(printf '%s\n1.85.0\n' "$v" | sort -V | head -n1)" = "1.85.0" ]
}
rust_ok || need "Rust 1.85 or newer (rustc --version: $(rustc --version 2>/dev/null || echo none))" \
    "curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y   # or: rustup update stable"
if ! command -v cc >/dev/null 2>&1; then
    if as_root_apt; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential >/dev/null
    else
        need "a C compiler (SQLite is built from source)" "sudo apt-get install build-essential"
    fi
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if as_root_apt; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        need "python3 with venv (for the Svix Python SDK and schemathesis)" "sudo apt-get install python3-venv"
    fi
fi
node_major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || true)
if [ -z "$node_major" ] || [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
    need "Node.js 20 or newer with npm (for the Svix JavaScript SDK and the browser tests; found: ${node_major:-none})" \
        "curl -fsSL https://deb.nodesource.com/setup_20.x | sudo bash - && sudo apt-get install -y nodejs"
fi
command -v curl >/dev/null 2>&1 || need "curl" "sudo apt-get install curl"

venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import svix, openapi_spec_validator, moto.server' 2>/dev/null; then
    echo "== creating $venv with the svix SDK (and moto, the S3/SQS/SNS-compatible server of the destination tests)"
    mkdir -p target
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'svix==2.9.1' 'openapi-spec-validator==0.9.0' 'moto[server]==5.2.5'
fi
export HERALD_TEST_PYTHON="$PWD/$venv/bin/python"

# The official Svix JavaScript SDK, for the second SDK end-to-end test, and
# playwright-core, which drives Debian's Chromium (/usr/bin/chromium, installed by
# `apt-get install chromium`; .ci/run does it) in the console and portal browser tests.
js=target/js-sdk
if [ ! -f "$js/node_modules/svix/package.json" ] || [ ! -f "$js/node_modules/playwright-core/package.json" ] || [ ! -f "$js/node_modules/oidc-provider/package.json" ]; then
    echo "== installing the svix JavaScript SDK and playwright-core into $js"
    mkdir -p "$js"
    npm install --silent --no-audit --no-fund --prefix "$js" svix@1.99.1 playwright-core@1.65.1 oidc-provider@9.13.3
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

set +e
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
status=$?
set -e

# The API contract: schemathesis against a real server and the OpenAPI document it
# serves (scripts/contract.sh), on a full run (no filter arguments) only.
if [ "$#" -eq 0 ]; then
    scripts/contract.sh target/debug/herald || status=1
fi
exit "$status"
