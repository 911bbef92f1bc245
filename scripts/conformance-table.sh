#!/usr/bin/env bash
# Runs the real-agent conformance suite and writes its table into docs/flume.md, between
# the conformance markers. Needs java, mvn and python3 (as scripts/flume-agent.sh does).
#
#   bash scripts/conformance-table.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scratch=$(mktemp -d)
# shellcheck source=scripts/flume-agent.sh
source scripts/flume-agent.sh
trap 'flume_stop; rm -rf "$scratch"' EXIT
flume_start "$scratch/flume"
HEADWATER_CONFORMANCE_TABLE="$scratch/table.md" \
  cargo test -p headwater-http --test real_flume -- --ignored the_mock_answers
python3 scripts/splice-conformance-table.py "$scratch/table.md" docs/flume.md
echo "docs/flume.md: table of $(($(wc -l <"$scratch/table.md") - 2)) requests written"
