#!/usr/bin/env bash
# Runs headwater's whole test suite on a fresh machine, installing what it needs.
#
#   bash scripts/test.sh
#
# Environment:
#   PROPTEST_CASES   cases per property test in the debug run (the tests' own default: 256)
#   PROPTEST_RELEASE_CASES  cases per property in the release run of the property model
#                    (default 50000: issue 31's bug showed once in ~100,000 cases)
#   FUZZ_SECONDS     how long each fuzz target runs (default 60)
#   HEADWATER_CACHE  where tools and downloads are cached (default ~/.cache/headwater)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

cache="${HEADWATER_CACHE:-$HOME/.cache/headwater}"
tools="$cache/tools"
export PATH="$tools/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
scratch=$(mktemp -d)
background_pids=()
cleanup() {
  if declare -F flume_stop >/dev/null; then flume_stop; fi
  if declare -F otelcol_stop >/dev/null; then otelcol_stop; fi
  for pid in "${background_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "toolchain: wasm32-unknown-unknown target"
rustup target add wasm32-unknown-unknown >/dev/null

step "native tests (unit, integration, property, doc)"
cargo test --workspace --all-targets
cargo test --workspace --doc
cargo test -p headwater --features sqlite --doc

step "the property model in release, ${PROPTEST_RELEASE_CASES:-50000} cases per property"
PROPTEST_CASES="${PROPTEST_RELEASE_CASES:-50000}" \
  cargo test --release -p headwater-core --test properties

step "the fleet simulator: 2,000 clients through an outage and a brownout"
# The invariants (nothing lost, nothing reordered, headwater's fleet drains), and the
# outage's report compared with the one recorded: a change to the delivery machine that
# moves it must be explained (docs/fleet.md says how to record a new one).
cargo build -q --release -p headwater-sim
"$target_dir/release/headwater-sim" outage --clients 2000 --seed 7 --check \
  --expect crates/headwater-sim/tests/outage-2000-seed-7.json
"$target_dir/release/headwater-sim" brownout --clients 2000 --seed 7 --check
# The delivery machine does not know which protocol runs: the same fleet speaking OTLP
# gives the same report.
echo '{"protocol": {"otlp": {"service_name": "fleet"}}}' >"$scratch/otlp-fleet.json"
"$target_dir/release/headwater-sim" outage --clients 2000 --seed 7 --check \
  --expect crates/headwater-sim/tests/outage-2000-seed-7.json --config "$scratch/otlp-fleet.json"

step "the headwater command installs as docs/cli.md says"
# Into a scratch root, reusing the release build above (the same target folder).
CARGO_TARGET_DIR="$target_dir" cargo install --quiet --locked --path crates/headwater-cli \
  --root "$scratch/install"
"$scratch/install/bin/headwater" --version

step "every shell command README.md and docs/cli.md show, run as they stand"
if command -v python3 >/dev/null; then
  python3 scripts/doc-commands.py "$scratch/install/bin" "$scratch/doc-commands"
else
  echo "SKIPPED: running the documented commands needs python3 on PATH"
fi

step "send on 300,000 lines: peak memory, and one id per line through SIGKILLs during the check and during delivery"
if command -v python3 >/dev/null && [ -x /usr/bin/time ]; then
  bash scripts/send-kill-and-memory.sh 300000 "$scratch/send-kill"
  rm -rf "$scratch/send-kill"
else
  echo "SKIPPED: the send kill-and-memory run needs python3 and /usr/bin/time"
fi

step "the docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "the apps docs/native.md and docs/browser.md describe, built outside the repository from their snippets"
bash scripts/doc-apps.sh "$scratch/doc-apps"

step "conformance against a real Apache Flume 1.11.0 agent"
if command -v java >/dev/null && command -v mvn >/dev/null && command -v python3 >/dev/null; then
  # shellcheck source=scripts/flume-agent.sh
  source scripts/flume-agent.sh
  flume_start "$scratch/flume"
  HEADWATER_CONFORMANCE_TABLE="$scratch/conformance.md" \
    cargo test -p headwater-http --test real_flume -- --ignored --nocapture
  flume_stop
  python3 scripts/splice-conformance-table.py --check "$scratch/conformance.md" docs/flume.md
  if command -v openssl >/dev/null; then
    step "HTTPS to a real Flume agent (keystore signed by a private CA)"
    FLUME_TLS=1 flume_start "$scratch/flume-tls"
    cargo test -p headwater-cli --test real_flume_tls -- --ignored --nocapture
    flume_stop
  else
    echo "SKIPPED: the HTTPS run against a real agent needs openssl on PATH"
  fi
else
  echo "SKIPPED: the real-Flume conformance tests need java, mvn and python3 on PATH" \
       "(java: $(command -v java || echo missing), mvn: $(command -v mvn || echo missing)," \
       "python3: $(command -v python3 || echo missing))"
fi

step "OTLP/HTTP logs into a real OpenTelemetry Collector (v0.161.0, built from the Go module proxy)"
if command -v go >/dev/null && command -v python3 >/dev/null; then
  # shellcheck source=scripts/otel-collector.sh
  source scripts/otel-collector.sh
  otelcol_start "$scratch/otelcol"
  cargo test -p headwater --features otlp --test real_otelcol -- --ignored --nocapture --test-threads 1
  otelcol_stop
else
  echo "SKIPPED: the real-Collector tests need go and python3 on PATH" \
       "(go: $(command -v go || echo missing), python3: $(command -v python3 || echo missing))"
fi

step "a real tier, really failing: Flume agents killed with SIGKILL while headwater sends"
if command -v java >/dev/null && command -v mvn >/dev/null && command -v python3 >/dev/null; then
  # Both runs (three agents side by side, round-robin; two edges and a collector), about
  # three and a half minutes; the release build, since the sender must outpace its
  # --max-rate.
  cargo build -q --release -p headwater-cli
  bash scripts/flume-tier.sh "$target_dir/release/headwater" "$scratch/flume-tier"
else
  echo "SKIPPED: the real-tier runs need java, mvn and python3 on PATH" \
       "(java: $(command -v java || echo missing), mvn: $(command -v mvn || echo missing)," \
       "python3: $(command -v python3 || echo missing))"
fi

step "browser tests in headless Chromium"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing Debian's chromium and chromium-driver"
  as_root apt-get update -qq
  as_root apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# shellcheck source=scripts/wasm-bindgen-cli.sh
source scripts/wasm-bindgen-cli.sh
cargo build -q -p headwater-cli
mkdir -p "$scratch/mocks" "$scratch/chromium"
"$target_dir/debug/headwater" mock-flume --bind 127.0.0.1:0 --cors >"$scratch/mocks/cors" 2>/dev/null &
background_pids+=($!)
"$target_dir/debug/headwater" mock-flume --bind 127.0.0.1:0 >"$scratch/mocks/strict" 2>/dev/null &
background_pids+=($!)
for _ in $(seq 1 100); do
  [ -s "$scratch/mocks/cors" ] && [ -s "$scratch/mocks/strict" ] && break
  sleep 0.1
done
# A Flume that is down: a port a mock listened on, closed again.
"$target_dir/debug/headwater" mock-flume --bind 127.0.0.1:0 >"$scratch/mocks/down" 2>/dev/null &
down_pid=$!
for _ in $(seq 1 100); do [ -s "$scratch/mocks/down" ] && break; sleep 0.1; done
kill "$down_pid"; wait "$down_pid" 2>/dev/null || true
HEADWATER_FLUME_DOWN_URL=$(head -n 1 "$scratch/mocks/down")
HEADWATER_MOCK_CORS_URL=$(head -n 1 "$scratch/mocks/cors")
HEADWATER_MOCK_STRICT_URL=$(head -n 1 "$scratch/mocks/strict")
export HEADWATER_MOCK_CORS_URL HEADWATER_MOCK_STRICT_URL HEADWATER_FLUME_DOWN_URL
echo "mock Flume with CORS at $HEADWATER_MOCK_CORS_URL, strict at $HEADWATER_MOCK_STRICT_URL"
CHROMEDRIVER="$(command -v chromedriver)" TMPDIR="$scratch/chromium" \
  WASM_BINDGEN_TEST_TIMEOUT=120 WASM_BINDGEN_TEST_NO_ORIGIN_ISOLATION=1 \
  cargo test --target wasm32-unknown-unknown -p headwater-http -p headwater-indexeddb --tests \
  --features headwater-http/otlp -- --nocapture

step "the browser benchmark, release build"
# Against a release build of the mock: a debug server would spend this 2-core machine's
# CPU that the browser needs, and measure the mock more than headwater.
cargo build -q --release -p headwater-cli
"$target_dir/release/headwater" mock-flume --bind 127.0.0.1:0 --cors >"$scratch/mocks/fast" 2>/dev/null &
background_pids+=($!)
for _ in $(seq 1 100); do [ -s "$scratch/mocks/fast" ] && break; sleep 0.1; done
HEADWATER_MOCK_CORS_URL=$(head -n 1 "$scratch/mocks/fast") \
  CHROMEDRIVER="$(command -v chromedriver)" TMPDIR="$scratch/chromium" \
  WASM_BINDGEN_TEST_TIMEOUT=120 WASM_BINDGEN_TEST_NO_ORIGIN_ISOLATION=1 \
  cargo test --release --target wasm32-unknown-unknown -p headwater-indexeddb --test end_to_end \
  -- --nocapture browser_benchmark 2>&1 | grep -E "browser benchmark|test result"

step "the npm package: packed, installed from its tarball into examples/todo-ts, type-checked, built with Vite and with esbuild"
if ! command -v npm >/dev/null; then
  echo "installing Node.js and npm (Debian's)"
  as_root apt-get update -qq
  as_root apt-get install -y -qq nodejs npm >/dev/null
fi
tarball=$(bash scripts/js-package.sh | tail -n 1)
echo "packed $tarball"
(
  cd examples/todo-ts
  rm -rf node_modules dist dist-esbuild package-lock.json
  npm install --no-audit --no-fund --silent
  npx tsc --noEmit
  npx vite build --logLevel warn
  npx esbuild src/main.ts --bundle --format=esm --minify --outdir=dist-esbuild --log-level=warning
  echo "tsc, vite and esbuild passed; Vite's build in examples/todo-ts/dist"
)

step "the todo pages (Rust, and TypeScript on the npm package), the package's checks and benchmark, in headless Chromium through WebDriver"
WEB_DEMO_PROFILE=dev bash scripts/web-demo.sh --build
# The package's benchmark against the release mock, as the Rust browser benchmark above.
"$target_dir/release/headwater" mock-flume --bind 127.0.0.1:0 --static examples/todo-ts/dist \
  >"$scratch/mocks/todo-ts" 2>/dev/null &
background_pids+=($!)
for _ in $(seq 1 100); do [ -s "$scratch/mocks/todo-ts" ] && break; sleep 0.1; done
HEADWATER_TODO_TS_BENCH_URL=$(head -n 1 "$scratch/mocks/todo-ts") \
  CHROMEDRIVER="$(command -v chromedriver)" TMPDIR="$scratch/chromium" \
  cargo test -p todo-web --test e2e -- --ignored --nocapture --test-threads=1

step "fuzzing the decoder, the codec round trip, the engine and the OTLP codec (${FUZZ_SECONDS:-60}s each)"
rustup toolchain install nightly --profile minimal >/dev/null 2>&1
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --version 0.13.2 --root "$tools"
fi
for target in decode roundtrip engine otlp; do
  log="$scratch/fuzz-$target.log"
  if (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="${FUZZ_SECONDS:-60}" >"$log" 2>&1); then
    echo "fuzz $target: $(grep -E '^Done' "$log" | tail -n 1)"
  else
    echo "fuzz $target FAILED; the end of its output:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
done

step "the facade's http feature natively without a TLS backend (plain HTTP, HTTPS refused by name)"
cargo check -p headwater --no-default-features --features http
cargo test -p headwater-http --no-default-features --lib

step "the core, the stores, the HTTP transport and the facade build for wasm32"
cargo check --target wasm32-unknown-unknown -p headwater-core -p headwater-memory -p headwater-http -p headwater-indexeddb
cargo check --target wasm32-unknown-unknown -p headwater --features browser
cargo check --target wasm32-unknown-unknown -p headwater --features browser,otlp

step "no import cycles between the files of a crate; no wall-clock read under the facade"
if command -v python3 >/dev/null; then
  python3 scripts/import-cycles.py crates/*/src
  python3 scripts/wall-clock-reads.py
else
  echo "SKIPPED: the import-cycle and wall-clock checks need python3 on PATH"
fi

step "the core depends on no runtime, HTTP client, browser API or OS randomness"
forbidden=$( (cargo tree -p headwater-core -e normal --prefix none --target all;
  cargo tree -p headwater-core --features otlp -e normal --prefix none --target all) \
  | grep -E '^(tokio|reqwest|web-sys|getrandom) ' | sort -u || true)
if [ -n "$forbidden" ]; then
  echo "headwater-core must stay pure, but depends on:" >&2
  echo "$forbidden" >&2
  exit 1
fi

echo
echo "all tests passed"
