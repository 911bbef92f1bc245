#!/usr/bin/env bash
# A real tier, really failing: real Apache Flume 1.11.0 agents with durable file
# channels, killed with SIGKILL while `headwater send` delivers 200,000 changes; checks
# that every change reached a final sink and prints the duplicates (and why), the
# reorderings per record, and the throughput dip and recovery after each restart.
# docs/fleet.md ("A real tier, really failing") describes the runs and their figures.
#
#   cargo build --release -p headwater-cli
#   bash scripts/flume-tier.sh HEADWATER SCRATCH [MODE] [RUNS]
#
#   HEADWATER  the headwater binary (the release build: a debug build is slower than
#              the agents it should pace)
#   SCRATCH    a folder for agents, sinks, inputs and logs (kept after the run, for a
#              look at the agents' logs; a later run replaces its own subfolders)
#   MODE       how headwater spreads over the agents: round-robin (default), failover
#              or by-key (send --route-by-key)
#   RUNS       side-by-side,tier (default), or one of them
#
# Needs java (17), mvn (once, to fetch the jars into $HEADWATER_CACHE/flume-1.11.0) and
# python3. The driver is scripts/flume-tier.py; this wrapper fetches the jars with
# flume_fetch (scripts/flume-agent.sh) and makes sure no agent outlives the run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  echo "usage: bash scripts/flume-tier.sh HEADWATER SCRATCH [round-robin|failover|by-key] [side-by-side,tier]" >&2
  exit 2
}
[ $# -ge 2 ] && [ $# -le 4 ] || usage
headwater="$1"
scratch="$2"
mode="${3:-round-robin}"
runs="${4:-side-by-side,tier}"
case "$mode" in
  round-robin | failover | by-key) ;;
  *) echo "unknown spreading mode '$mode': use round-robin, failover or by-key" >&2; usage ;;
esac
[ -x "$headwater" ] || { echo "$headwater is not an executable file (build it: cargo build --release -p headwater-cli)" >&2; exit 2; }
for tool in java python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not on PATH" >&2; exit 2; }
done
headwater="$(cd "$(dirname "$headwater")" && pwd)/$(basename "$headwater")"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"

# shellcheck source=scripts/flume-agent.sh
source "$here/flume-agent.sh"
flume_fetch

driver_pid=
cleanup() {
  if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
    kill "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
  # The driver stops its agents and sender itself; if it was killed outright, they are
  # still listed in its pid file. Only processes whose command line names this scratch
  # folder are ours (a pid may have been reused since).
  if [ -f "$scratch/.pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] || continue
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$scratch"; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done <"$scratch/.pids"
    rm -f "$scratch/.pids"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 "$here/flume-tier.py" --headwater "$headwater" --scratch "$scratch" \
  --lib "$FLUME_LIB" --mode "$mode" --runs "$runs" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=
exit "$status"
