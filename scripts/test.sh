#!/usr/bin/env bash
# Runs headwater's whole test suite on a fresh machine, installing what it needs.
#
#   bash scripts/test.sh
#
# Environment:
#   PROPTEST_CASES   cases per property test (default here: 1024; the tests' own default is 256)
#   FUZZ_SECONDS     how long each fuzz target runs (default 60)
#   HEADWATER_CACHE  where tools and downloads are cached (default ~/.cache/headwater)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32-unknown-unknown target"
rustup target add wasm32-unknown-unknown >/dev/null

step "native tests (unit, integration, property, doc)"
PROPTEST_CASES="${PROPTEST_CASES:-1024}" cargo test --workspace --all-targets
cargo test --workspace --doc

step "conformance against a real Apache Flume 1.11.0 agent"
if command -v java >/dev/null && command -v mvn >/dev/null && command -v python3 >/dev/null; then
  flume_dir=$(mktemp -d)
  # shellcheck source=scripts/flume-agent.sh
  source scripts/flume-agent.sh
  trap 'flume_stop; rm -rf "$flume_dir"' EXIT
  flume_start "$flume_dir"
  cargo test -p headwater-http --test real_flume -- --ignored --nocapture
  flume_stop
else
  echo "SKIPPED: the real-Flume conformance tests need java, mvn and python3 on PATH" \
       "(java: $(command -v java || echo missing), mvn: $(command -v mvn || echo missing)," \
       "python3: $(command -v python3 || echo missing))"
fi

step "fuzzing the decoder, the codec round trip and the engine (${FUZZ_SECONDS:-60}s each)"
tools="${HEADWATER_CACHE:-$HOME/.cache/headwater}/tools"
rustup toolchain install nightly --profile minimal >/dev/null 2>&1
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --version 0.13.2 --root "$tools"
fi
export PATH="$tools/bin:$PATH"
for target in decode roundtrip engine; do
  log=$(mktemp)
  if (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="${FUZZ_SECONDS:-60}" >"$log" 2>&1); then
    echo "fuzz $target: $(grep -E '^Done' "$log" | tail -n 1)"
    rm -f "$log"
  else
    echo "fuzz $target FAILED; the end of its output:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
done

step "the core, the memory store and the HTTP transport build for wasm32"
cargo check --target wasm32-unknown-unknown -p headwater-core -p headwater-memory -p headwater-http

step "the core depends on no runtime, HTTP client, browser API or OS randomness"
forbidden=$(cargo tree -p headwater-core -e normal --prefix none --target all \
  | grep -E '^(tokio|reqwest|web-sys|getrandom) ' || true)
if [ -n "$forbidden" ]; then
  echo "headwater-core must stay pure, but depends on:" >&2
  echo "$forbidden" >&2
  exit 1
fi

echo
echo "all tests passed"
