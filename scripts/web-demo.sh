#!/usr/bin/env bash
# Builds examples/todo-web for the browser and serves it with a mock Flume on one
# origin, so the page and Flume need no CORS.
#
#   bash scripts/web-demo.sh            build (release) and serve on 127.0.0.1:8080
#   bash scripts/web-demo.sh --build    build only (the end-to-end test uses this)
#
# Environment: WEB_DEMO_BIND (default 127.0.0.1:8080), WEB_DEMO_PROFILE (release or dev),
# HEADWATER_CACHE (tools; wasm-bindgen-cli of the version in Cargo.lock goes there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${WEB_DEMO_PROFILE:-release}"
out="$PWD/target/web-demo"
site="$out/site"

# shellcheck source=scripts/wasm-bindgen-cli.sh
source scripts/wasm-bindgen-cli.sh

started=$(date +%s)
if [ "$profile" = release ]; then
  cargo build -q --release --target wasm32-unknown-unknown -p todo-web
  wasm="$target_dir/wasm32-unknown-unknown/release/todo_web.wasm"
else
  cargo build -q --target wasm32-unknown-unknown -p todo-web
  wasm="$target_dir/wasm32-unknown-unknown/debug/todo_web.wasm"
fi
rm -rf "$site" && mkdir -p "$site/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site/pkg" "$wasm"
cp examples/todo-web/static/index.html "$site/"
echo "built $site in $(( $(date +%s) - started ))s ($profile; wasm $(du -k "$site/pkg/todo_web_bg.wasm" | cut -f1) KiB)"

if [ "${1:-}" = --build ]; then
  exit 0
fi

cargo build -q -p headwater-cli
bind="${WEB_DEMO_BIND:-127.0.0.1:8080}"
echo "open http://$bind/ (events go to $out/sink.jsonl; Ctrl-C to stop)"
exec "$target_dir/debug/headwater" mock-flume --bind "$bind" --static "$site" --sink "$out/sink.jsonl"
