#!/usr/bin/env bash
# Builds the npm package headwater-browser from a clean tree and packs it.
#
#   bash scripts/js-package.sh
#
# Installs what it needs where missing: the wasm32 target, wasm-bindgen-cli at the
# version in Cargo.lock (under $HEADWATER_CACHE/tools) and wasm-opt from npm's binaryen
# package (under $HEADWATER_CACHE/npm-tools). The wasm is built with the size-optimised
# profile wasm-release. Prints sizes, and as its last line the tarball's absolute path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache="${HEADWATER_CACHE:-$HOME/.cache/headwater}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="$PWD/target/js-package"
stage="$out/stage"
binaryen_version=132.0.0

for tool in npm node; do
  command -v "$tool" >/dev/null || { echo "js-package.sh needs $tool on PATH (Node.js 18 or later)" >&2; exit 1; }
done
# shellcheck source=scripts/wasm-bindgen-cli.sh
source scripts/wasm-bindgen-cli.sh
wasm_opt="$cache/npm-tools/node_modules/.bin/wasm-opt"
if [ ! -x "$wasm_opt" ] || [ "$("$wasm_opt" --version | grep -o 'version [0-9]*' | awk '{print $2}')" != "${binaryen_version%%.*}" ]; then
  echo "installing wasm-opt (npm's binaryen@$binaryen_version)" >&2
  mkdir -p "$cache/npm-tools"
  npm install --silent --no-audit --no-fund --prefix "$cache/npm-tools" "binaryen@$binaryen_version" >&2
fi

cargo build -q --profile wasm-release --target wasm32-unknown-unknown -p headwater-js >&2
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/headwater_js.wasm"
rm -rf "$stage" && mkdir -p "$stage/wasm"
wasm-bindgen --target web --out-dir "$stage/wasm" --out-name headwater_js "$wasm" >&2
# The features Rust's wasm32 target enables by default (bulk memory, sign extension,
# non-trapping conversions, multi-value, reference types).
"$wasm_opt" -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-multivalue --enable-reference-types --enable-mutable-globals \
  "$stage/wasm/headwater_js_bg.wasm" -o "$stage/wasm/headwater_js_bg.wasm"
cp packages/headwater-browser/{package.json,index.js,index.d.ts,README.md} "$stage/"

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9c "$1" | wc -c | tr -d ' '; }
wasm_out="$stage/wasm/headwater_js_bg.wasm"
glue=$(( $(gz "$stage/wasm/headwater_js.js") + $(gz "$stage/index.js") ))
echo "wasm $(size "$wasm_out") bytes, $(gz "$wasm_out") gzipped; JS $(( $(size "$stage/wasm/headwater_js.js") + $(size "$stage/index.js") )) bytes, $glue gzipped; together $(( ($(gz "$wasm_out") + glue) / 1024 )) KiB gzipped" >&2

mkdir -p "$out"
rm -f "$out"/headwater-browser-*.tgz
tarball=$(cd "$stage" && npm pack --silent --pack-destination "$out" | tail -1)
echo "$out/$tarball"
