#!/usr/bin/env bash
# headwater's durable `send` side by side with Flume's own Java client and raw HTTP,
# into one real Flume 1.11 agent, in one run:
#
#   bash scripts/bench-side-by-side.sh [EVENTS] [ROUNDS]     (500000, 3)
#
# The agent (Flume 1.11.0 from Maven Central, as scripts/flume-agent.sh fetches it) has
# an HTTP source and an Avro source into one memory channel (transactionCapacity 1000)
# drained by a null sink. Every row sends EVENTS events of ~440 bytes (six headers, a
# ~250-byte JSON body) in batches of 100:
#
# - Flume's Java RpcClient (scripts/bench/FlumeRpcBench.java) into the Avro source, one
#   client, then four threads with a client each;
# - raw HTTP into the HTTP source: ab (Debian's apache2-utils, installed if missing)
#   posting one prebuilt 100-event body with keep-alive, 1 and 4 in flight;
# - `headwater send` (a SQLite state, synchronous = FULL, 5,000 keys) at
#   --max-in-flight 1 and 4, each round on a fresh state, timed from outside: the
#   whole process, its check of the input included, as issue 25 counts a rate.
#
# Prints one table of medians over ROUNDS rounds (each round runs every row once,
# alternating) and the ratios issue 25 names. Nothing here is a test: figures go to
# docs/performance.md with the date.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

events="${1:-500000}"
rounds="${2:-3}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
work=$(mktemp -d)
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ab >/dev/null; then
  echo "installing ab (Debian's apache2-utils)" >&2
  as_root apt-get install -y -qq apache2-utils >/dev/null
fi
source scripts/flume-agent.sh
flume_fetch
cargo build -q --release -p headwater-cli
headwater="$target_dir/release/headwater"

http_port=$(flume_free_port)
avro_port=$(flume_free_port)
cat >"$work/agent.conf" <<CONF
a1.sources = http avro
a1.channels = c1
a1.sinks = k1
a1.sources.http.type = http
a1.sources.http.bind = 127.0.0.1
a1.sources.http.port = $http_port
a1.sources.http.channels = c1
a1.sources.avro.type = avro
a1.sources.avro.bind = 127.0.0.1
a1.sources.avro.port = $avro_port
a1.sources.avro.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 100000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = null
a1.sinks.k1.batchSize = 1000
a1.sinks.k1.channel = c1
CONF
java -Xmx1g -Dfile.encoding=UTF-8 -cp "$FLUME_LIB/*" org.apache.flume.node.Application \
  -n a1 -f "$work/agent.conf" --no-reload-conf >"$work/agent.log" 2>&1 &
agent_pid=$!
url="http://127.0.0.1:$http_port/"
listening=no
for _ in $(seq 1 120); do
  if python3 - "$http_port" "$avro_port" <<'EOF' 2>/dev/null; then listening=yes; break; fi
import socket, sys
for port in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
EOF
  sleep 0.5
done
if [ "$listening" != yes ]; then
  echo "the Flume agent did not open its ports within 60 s; its log:" >&2
  tail -n 30 "$work/agent.log" >&2
  exit 1
fi

# The inputs: send's JSON lines, and ab's body of 100 events shaped as send's.
python3 - "$events" "$work" <<'EOF'
import json, sys, time, uuid
count, work = int(sys.argv[1]), sys.argv[2]
note = "x" * 120
def value(i):
    return {"order": i, "thread": 0, "customer": "customer-%05d" % (i % 5000), "status": "paid",
            "items": [{"sku": "sku-00001", "qty": 2}, {"sku": "sku-00002", "qty": 1}], "note": note}
with open(f"{work}/in.jsonl", "w") as out:
    for i in range(count):
        out.write(json.dumps({"collection": "orders", "key": "order-%d" % (i % 5000), "op": "update",
                              "value": value(i)}, separators=(",", ":")) + "\n")
now = str(int(time.time() * 1000))
body = [{"headers": {"id": str(uuid.uuid4()), "timestamp": now, "op": "update", "collection": "orders",
                     "key": "order-%d" % i, "seq": str(i)},
         "body": json.dumps(value(i), separators=(",", ":"))} for i in range(100)]
open(f"{work}/body.json", "w").write(json.dumps(body, separators=(",", ":")))
EOF
echo "agent on $url (HTTP) and 127.0.0.1:$avro_port (Avro); $events events per row, $rounds rounds" >&2

java_rate() { # THREADS
  java -Xmx1g -cp "$FLUME_LIB/*" scripts/bench/FlumeRpcBench.java 127.0.0.1 "$avro_port" "$1" "$events" 100 \
    2>>"$work/java.log" | sed -E 's/.*: ([0-9.]+) events\/s/\1/'
}
ab_rate() { # IN_FLIGHT
  local requests=$(( events / 100 ))
  ab -q -k -n "$requests" -c "$1" -p "$work/body.json" -T "application/json; charset=UTF-8" "$url" \
    >"$work/ab.out" 2>&1
  grep -q "^Non-2xx responses" "$work/ab.out" && { echo "ab: Flume refused requests" >&2; cat "$work/ab.out" >&2; exit 1; }
  awk -v n="$requests" '/^Time taken for tests/ { printf "%.0f\n", n * 100 / $5 }' "$work/ab.out"
}
send_rate() { # IN_FLIGHT
  # Timed from outside, as issue 25 counts it: the whole process, its check of the
  # input, opening the state and delivery (send's own events_per_sec times delivery).
  rm -f "$work/state.db"*
  local started ended
  started=$(date +%s.%N)
  "$headwater" send --to "$url" --state "$work/state.db" --batch-size 100 --max-in-flight "$1" \
    --json "$work/in.jsonl" >"$work/send.json" 2>>"$work/send.log"
  ended=$(date +%s.%N)
  python3 - "$work/send.json" "$events" "$started" "$ended" <<'EOF'
import json, sys
summary, events = json.load(open(sys.argv[1])), int(sys.argv[2])
if summary["delivered_unique"] != events:
    sys.exit(f"send delivered {summary['delivered_unique']} of {events} changes")
print(round(events / (float(sys.argv[4]) - float(sys.argv[3]))))
EOF
}

# Warm the agent's JIT (and the client's) before the first measured round.
java_rate 4 >/dev/null
ab -q -k -n 2000 -c 4 -p "$work/body.json" -T "application/json; charset=UTF-8" "$url" >/dev/null 2>&1

rows=("java 1" "java 4" "raw 1" "raw 4" "send 1" "send 4")
for round in $(seq 1 "$rounds"); do
  for row in "${rows[@]}"; do
    set -- $row
    case "$1" in
      java) rate=$(java_rate "$2") ;;
      raw) rate=$(ab_rate "$2") ;;
      send) rate=$(send_rate "$2") ;;
    esac
    echo "round $round: $row $rate" >&2
    echo "$1 $2 $rate" >>"$work/rates"
  done
done

python3 - "$work/rates" "$events" "$rounds" <<'EOF'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    kind, n, rate = line.split()
    rates.setdefault((kind, int(n)), []).append(float(rate))
median = {key: statistics.median(values) for key, values in rates.items()}
names = {"java": "Flume's Java RpcClient (Avro), {} client(s)", "raw": "raw HTTP (ab -k, prebuilt body), {} in flight",
         "send": "headwater send (SQLite, synchronous = FULL), --max-in-flight {}"}
print(f"\n{sys.argv[2]} events of ~440 bytes per row, batches of 100, one real Flume 1.11 agent; "
      f"median of {sys.argv[3]} rounds (all rounds: min–max)\n")
print("| row | events/s | rounds |")
print("|---|---|---|")
for key in [("java", 1), ("java", 4), ("raw", 1), ("raw", 4), ("send", 1), ("send", 4)]:
    values = rates[key]
    print(f"| {names[key[0]].format(key[1])} | {median[key]:,.0f} | {min(values):,.0f}–{max(values):,.0f} |")
def ratio(a, b):
    return median[a] / median[b]
print()
print(f"send (4 in flight) ÷ Java client, four threads: {ratio(('send', 4), ('java', 4)):.2f} (goal ≥ 0.8)")
print(f"send (4 in flight) ÷ Java client, one client:   {ratio(('send', 4), ('java', 1)):.2f} (goal ≥ 1.5)")
print(f"send (1 in flight) ÷ raw HTTP, 1 in flight:     {ratio(('send', 1), ('raw', 1)):.2f} (goal ≥ 0.6)")
print(f"send (4 in flight) ÷ raw HTTP, 4 in flight:     {ratio(('send', 4), ('raw', 4)):.2f}")
EOF
