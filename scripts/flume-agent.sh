#!/usr/bin/env bash
# Starts and stops a real Apache Flume 1.11.0 agent for the conformance tests:
# HTTP source on 127.0.0.1 (a free port) → memory channel (transactionCapacity 20) →
# file_roll sink with the header_and_text serializer.
#
# Source it, then:
#   flume_start DIR   fetches the jars (cached), starts the agent, waits until it takes
#                     requests, and exports HEADWATER_FLUME_URL and HEADWATER_FLUME_SINK
#   flume_stop        stops it (safe to call more than once; use it in a trap)
#   flume_fetch       only fetches the jars (cached) and sets FLUME_LIB to their folder
#   flume_free_port   prints a TCP port on 127.0.0.1 that nothing listens on now
#
# Needs java (17) and mvn. Jars are cached in $HEADWATER_CACHE/flume-1.11.0.
#
# Environment (read by flume_start):
#   FLUME_TRANSACTION_CAPACITY  the channel's transactionCapacity (default 20)
#   FLUME_SINK                  file_roll (default: events in DIR/sink) or null (for
#                               throughput runs)
#   FLUME_TLS                   1: serve HTTPS (`ssl = true`) from a PKCS#12 keystore
#                               signed by a private CA made in DIR/tls with openssl;
#                               exports HEADWATER_FLUME_CA (the CA's PEM)

# Fetches Flume 1.11.0's jars (scripts/flume/pom.xml) from Maven Central once, into
# $HEADWATER_CACHE/flume-1.11.0, and sets FLUME_LIB to the folder that holds them. The
# `complete` marker is written last, so an interrupted fetch is redone, not half-used.
# Shared by flume_start and scripts/flume-tier.sh.
flume_fetch() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  local cache="${HEADWATER_CACHE:-$HOME/.cache/headwater}/flume-1.11.0"
  if [ ! -f "$cache/complete" ]; then
    echo "fetching Flume 1.11.0 from Maven Central into $cache"
    rm -rf "$cache" && mkdir -p "$cache"
    mvn -q -B -f "$here/flume/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$cache/lib" || { echo "maven could not fetch Flume" >&2; return 1; }
    touch "$cache/complete"
  fi
  FLUME_LIB="$cache/lib"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
flume_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

flume_start() {
  local dir="$1"
  flume_fetch || return 1
  local capacity="${FLUME_TRANSACTION_CAPACITY:-20}"
  local sink="${FLUME_SINK:-file_roll}"
  mkdir -p "$dir/sink"
  local scheme=http
  if [ "${FLUME_TLS:-0}" = 1 ]; then
    scheme=https
    make_keystore "$dir/tls" || return 1
  fi
  local port
  port=$(flume_free_port)
  cat > "$dir/agent.conf" <<CONF
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = http
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = $port
a1.sources.r1.channels = c1
CONF
  if [ "$scheme" = https ]; then
    cat >> "$dir/agent.conf" <<CONF
a1.sources.r1.ssl = true
a1.sources.r1.keystore = $dir/tls/flume.p12
a1.sources.r1.keystore-password = changeit
a1.sources.r1.keystore-type = PKCS12
CONF
  fi
  cat >> "$dir/agent.conf" <<CONF
a1.channels.c1.type = memory
a1.channels.c1.capacity = 200000
a1.channels.c1.transactionCapacity = $capacity
a1.sinks.k1.channel = c1
CONF
  if [ "$sink" = null ]; then
    cat >> "$dir/agent.conf" <<CONF
a1.sinks.k1.type = null
a1.sinks.k1.batchSize = $capacity
CONF
  else
    cat >> "$dir/agent.conf" <<CONF
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = $dir/sink
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.sink.serializer = header_and_text
a1.sinks.k1.sink.batchSize = $capacity
CONF
  fi
  java -Xmx512m -Dfile.encoding=UTF-8 -cp "$FLUME_LIB/*" \
    org.apache.flume.node.Application -n a1 -f "$dir/agent.conf" --no-reload-conf \
    > "$dir/agent.log" 2>&1 &
  FLUME_PID=$!
  export HEADWATER_FLUME_URL="$scheme://127.0.0.1:$port/"
  export HEADWATER_FLUME_SINK="$dir/sink"
  export HEADWATER_FLUME_TRANSACTION_CAPACITY=$capacity
  local waited=0
  until python3 - "$HEADWATER_FLUME_URL" "${HEADWATER_FLUME_CA:-}" <<'PY' 2>/dev/null
import ssl, sys, urllib.request
request = urllib.request.Request(sys.argv[1], data=b"[]", method="POST",
                                 headers={"Content-Type": "application/json; charset=UTF-8"})
context = ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[2] else None
urllib.request.urlopen(request, timeout=2, context=context)
PY
  do
    if ! kill -0 "$FLUME_PID" 2>/dev/null || [ "$waited" -ge 120 ]; then
      echo "the Flume agent did not start; its log:" >&2
      tail -n 40 "$dir/agent.log" >&2
      flume_stop
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "Flume 1.11.0 agent (pid $FLUME_PID) takes requests at $HEADWATER_FLUME_URL after ${waited}s"
}

# A private CA and a server certificate for 127.0.0.1 signed by it, in a PKCS#12
# keystore as Flume's `keystore` setting reads it (password "changeit").
make_keystore() {
  local tls="$1"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=headwater test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || { echo "openssl failed" >&2; return 1; }
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tls/flume.key" -out "$tls/flume.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$tls/san.ext"
  openssl x509 -req -in "$tls/flume.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$tls/san.ext" -out "$tls/flume.pem" 2>/dev/null
  openssl pkcs12 -export -in "$tls/flume.pem" -inkey "$tls/flume.key" -name flume \
    -passout pass:changeit -out "$tls/flume.p12"
  export HEADWATER_FLUME_CA="$tls/ca.pem"
}

flume_stop() {
  if [ -n "${FLUME_PID:-}" ]; then
    kill "$FLUME_PID" 2>/dev/null || true
    wait "$FLUME_PID" 2>/dev/null || true
    FLUME_PID=
  fi
}
