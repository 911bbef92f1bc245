# Sourced by the scripts that run wasm-bindgen: puts wasm-bindgen-cli at the version in
# Cargo.lock (wasm-bindgen and wasm-bindgen-test-runner) on PATH, installing it under
# $HEADWATER_CACHE/tools (default ~/.cache/headwater/tools) where missing, and the
# wasm32 target. Run from the repository's root.
wasm_bindgen_cache="${HEADWATER_CACHE:-$HOME/.cache/headwater}/tools"
export PATH="$wasm_bindgen_cache/bin:$PATH"
rustup target add wasm32-unknown-unknown >/dev/null
wasm_bindgen=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wasm_bindgen" ] ||
   [ "$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')" != "$wasm_bindgen" ]; then
  echo "installing wasm-bindgen-cli $wasm_bindgen (the version in Cargo.lock)" >&2
  cargo install wasm-bindgen-cli --version "=$wasm_bindgen" --root "$wasm_bindgen_cache" >&2
fi
