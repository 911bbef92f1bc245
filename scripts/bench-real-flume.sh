#!/usr/bin/env bash
# Runs the delivery benchmark against a real Flume 1.11 agent (memory channel with
# transactionCapacity 100, null sink) instead of the bench mock:
#   bash scripts/bench-real-flume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/flume-agent.sh
dir="$(mktemp -d)"
trap 'flume_stop; rm -rf "$dir"' EXIT
FLUME_TRANSACTION_CAPACITY=100 FLUME_SINK=null flume_start "$dir"
HEADWATER_BENCH_FLUME_URL="$HEADWATER_FLUME_URL" \
  cargo bench -p headwater-benches --bench delivery -- delivery
