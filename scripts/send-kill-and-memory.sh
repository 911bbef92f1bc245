#!/usr/bin/env bash
# `send` on a large input: its peak memory, and one id per line through two SIGKILLs.
#
#   bash scripts/send-kill-and-memory.sh [LINES] [SCRATCH]     (LINES: 5000000)
#
# 1. A fresh `send` of LINES lines (~236 bytes each, 5,000 keys) into `headwater
#    mock-flume`, timed by /usr/bin/time: wall, CPU and peak RSS.
# 2. Against a second mock that writes every committed event to a sink file: `send`
#    killed with SIGKILL while it checks the input, run again and killed while it
#    delivers (once a fifth of the lines reached the sink), then run to the end.
#    Every line must reach the sink under exactly one id (a line sent twice keeps its
#    id; a line under two ids, or a line missing, fails the script).
#
# scripts/test.sh runs it with 300,000 lines; docs/performance.md gives a 5,000,000-line
# run. Needs python3 and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

lines="${1:-5000000}"
scratch="${2:-$(mktemp -d)}"
mkdir -p "$scratch"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q --release -p headwater-cli
headwater="$target_dir/release/headwater"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

mock() { # mock NAME [ARGS...]: starts a mock, sets $url
  local name="$1"; shift
  rm -f "$scratch/$name.url"
  "$headwater" mock-flume --bind 127.0.0.1:0 "$@" >"$scratch/$name.url" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$scratch/$name.url" ] && break; sleep 0.1; done
  url=$(head -n 1 "$scratch/$name.url")
}

input="$scratch/in.jsonl"
python3 - "$lines" "$input" <<'EOF'
import sys
count, path = int(sys.argv[1]), sys.argv[2]
pad = "x" * 160
with open(path, "w") as out:
    for i in range(count):
        out.write('{"collection":"c","key":"k%d","op":"update","value":{"n":%d,"pad":"%s"}}\n' % (i % 5000, i, pad))
EOF
echo "input: $lines lines, $(du -h "$input" | cut -f1)"

mock plain
rm -f "$scratch/fresh.db"*
/usr/bin/time -f "%e %U %S %M" -o "$scratch/time" \
  "$headwater" send --to "$url" --state "$scratch/fresh.db" --json "$input" >"$scratch/fresh.json" 2>/dev/null
read -r wall user sys rss <"$scratch/time"
python3 - "$scratch/fresh.json" "$lines" "$wall" "$user" "$sys" "$rss" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
lines, wall, user, system, rss = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
assert summary["delivered_unique"] == lines, summary
print(f"fresh send: {wall:.1f} s wall, {lines / wall:,.0f} lines/s, CPU {(user + system) / lines * 1e6:.2f} µs per line "
      f"({user:.1f} user + {system:.1f} sys), peak RSS {rss / 1024:.1f} MB")
EOF

sink="$scratch/sink.jsonl"
# kill_send PID: SIGKILL, and the process reaped, without bash's "Killed" line (the shell
# reports the signal on its own stderr after the next command, which a redirection of
# `wait` alone does not always catch).
kill_send() { exec 3>&2 2>/dev/null; kill -9 "$1" || true; wait "$1" || true; exec 2>&3 3>&-; }

# start_send NAME: a `send` in the background, its pid in $pid (headwater's own, so that
# SIGKILL reaches it).
start_send() {
  "$headwater" send --to "$url" --state "$scratch/killed.db" --json "$input" \
    >"$scratch/$1.json" 2>"$scratch/$1.err" &
  pid=$!
}

# Killed while it checks the input: nothing is captured before the whole file is checked.
# The kill comes as soon as /proc shows the input open (the check reads it first, before
# any state exists); the state is made only once the check has passed, so its absence
# after the kill says the kill came during the check. A fast machine may finish the
# check between two looks: then the try is undone (a fresh sink, no state) and made again.
killed_in_check=""
for try in 1 2 3 4 5; do
  rm -f "$sink" "$scratch/killed.db"*
  mock sinking --sink "$sink"
  start_send during-check
  while kill -0 "$pid" 2>/dev/null; do
    if ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "$input"; then break; fi
    sleep 0.002
  done
  if ! kill -0 "$pid" 2>/dev/null; then
    # Gone before the kill: an error, or a run over in less time than one look.
    echo "FAILED: send ended on its own before it could be killed in the check (more LINES?):" \
      "$(tail -n 5 "$scratch/during-check.err")" >&2
    exit 1
  fi
  kill_send "$pid"
  if [ ! -e "$scratch/killed.db" ]; then killed_in_check=yes; break; fi
  echo "try $try: the check was over before the kill; trying again"
  kill "${pids[-1]}" 2>/dev/null || true
done
if [ -z "$killed_in_check" ]; then
  echo "FAILED to kill during the check in 5 tries (more LINES?)" >&2
  exit 1
fi
echo "killed during the check: no state made, $(wc -l <"$sink" 2>/dev/null || echo 0) events at the sink"

# Killed while it delivers, once a fifth of the lines have arrived.
start_send during-delivery
threshold=$(( lines / 5 ))
while kill -0 "$pid" 2>/dev/null; do
  arrived=$(wc -l <"$sink" 2>/dev/null || echo 0)
  [ "$arrived" -ge "$threshold" ] && break
  sleep 0.2
done
kill_send "$pid"
echo "killed during delivery: $(wc -l <"$sink") events at the sink"

start_send to-the-end
wait "$pid" || { echo "FAILED: the last run exited $?: $(tail -n 5 "$scratch/to-the-end.err")" >&2; exit 1; }
python3 - "$sink" "$lines" "$scratch/to-the-end.json" <<'EOF'
import json, sys
sink, lines = sys.argv[1], int(sys.argv[2])
summary = json.load(open(sys.argv[3]))
ids = {}
events = 0
for line in open(sink):
    event = json.loads(line)
    events += 1
    n = json.loads(event["body"])["n"]
    ids.setdefault(n, set()).add(event["headers"]["id"])
missing = lines - len(ids)
split = sum(1 for found in ids.values() if len(found) > 1)
print(f"rerun: resumed {summary['resumed']}, delivered {summary['delivered_unique']}; at the sink "
      f"{events} events, {len(ids)} lines, {events - len(ids)} sent twice under one id, "
      f"{split} under two ids, {missing} missing")
if missing or split:
    sys.exit("FAILED: every line must arrive under exactly one id")
EOF
