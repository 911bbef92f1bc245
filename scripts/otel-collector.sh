#!/usr/bin/env bash
# Builds (once, cached) and starts a real OpenTelemetry Collector for the OTLP tests:
# the OTLP receiver (HTTP, on 127.0.0.1 at a free port) → the contrib file exporter,
# which writes each request it takes as one line of OTLP JSON.
#
# Source it, then:
#   otelcol_start DIR  builds the collector if needed, starts it, waits until it takes
#                      requests, and exports HEADWATER_OTLP_URL (…/v1/logs) and
#                      HEADWATER_OTLP_FILE (the exporter's file)
#   otelcol_stop       stops it (safe to call more than once; use it in a trap)
#   otelcol_build      only builds it (cached) and sets OTELCOL to the binary
#
# Needs go. The collector is built from scripts/otelcol (go.opentelemetry.io/collector
# v0.161.0 and the contrib fileexporter at the same release, from the Go module proxy)
# into $HEADWATER_CACHE/otelcol-0.161.0; about a minute on 2 cores the first time.

otelcol_build() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  local cache="${HEADWATER_CACHE:-$HOME/.cache/headwater}/otelcol-0.161.0"
  OTELCOL="$cache/otelcol"
  # Rebuilt when its sources change: the binary is stamped with their checksum.
  local stamp
  stamp=$(cat "$here/otelcol/main.go" "$here/otelcol/go.mod" "$here/otelcol/go.sum" | sha256sum | cut -c1-16)
  if [ ! -x "$OTELCOL" ] || [ "$(cat "$cache/stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "building the OpenTelemetry Collector v0.161.0 into $cache"
    mkdir -p "$cache"
    (cd "$here/otelcol" && GOFLAGS=-mod=mod go build -trimpath -o "$OTELCOL.partial" .) \
      || { echo "go could not build the collector" >&2; return 1; }
    mv "$OTELCOL.partial" "$OTELCOL"
    echo "$stamp" > "$cache/stamp"
  fi
}

otelcol_start() {
  local dir="$1"
  otelcol_build || return 1
  mkdir -p "$dir"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  cat > "$dir/config.yaml" <<CONF
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$port
        # Small enough that the conformance suite's oversized request meets it.
        max_request_body_size: 1048576
exporters:
  file:
    path: $dir/logs.jsonl
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
CONF
  "$OTELCOL" --config "$dir/config.yaml" >"$dir/collector.log" 2>&1 &
  OTELCOL_PID=$!
  export HEADWATER_OTLP_URL="http://127.0.0.1:$port/v1/logs"
  export HEADWATER_OTLP_FILE="$dir/logs.jsonl"
  for _ in $(seq 1 200); do
    if grep -q "Everything is ready" "$dir/collector.log" 2>/dev/null; then
      echo "OpenTelemetry Collector at $HEADWATER_OTLP_URL, records in $HEADWATER_OTLP_FILE"
      return 0
    fi
    if ! kill -0 "$OTELCOL_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "the collector did not start; its log:" >&2
  tail -n 40 "$dir/collector.log" >&2
  otelcol_stop
  return 1
}

otelcol_stop() {
  if [ -n "${OTELCOL_PID:-}" ]; then
    kill "$OTELCOL_PID" 2>/dev/null || true
    wait "$OTELCOL_PID" 2>/dev/null || true
    OTELCOL_PID=
  fi
}
