#!/usr/bin/env bash
# The broker destinations benchmark of BENCHMARKS.md ("Destinations into the
# consumer's systems"): examples/brokers, N rounds, each writing the same messages into
# RabbitMQ, PostgreSQL and NATS with batches of 100, through Herald and through a plain
# client of each system, in the same minutes. Needs the local servers (RabbitMQ 5672
# guest/guest, PostgreSQL 5432 user postgres, NATS 4222 with JetStream).
#   scripts/bench-brokers.sh [rounds] [messages]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
messages=${2:-50000}
cargo build --release -q -p herald --bin herald --example brokers
for round in $(seq 1 "$rounds"); do
    echo "== round $round"
    target/release/examples/brokers target/release/herald "$messages" 2>/dev/null | tail -1
done
