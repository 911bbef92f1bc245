#!/usr/bin/env bash
# Builds the apps that docs/native.md and docs/browser.md describe, outside this
# repository and from the docs' own snippets alone (their Cargo.toml and code, marked
# `<!-- doc-app: ... -->`), as a newcomer would: the native SQLite service is built,
# the browser app checked for wasm32. Their path dependency "../headwater/..." points
# at this checkout through a symlink next to them.
#
#   bash scripts/doc-apps.sh [DIR]      (default: a temporary folder)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
ln -sfn "$repo" "$out/headwater"
for app in $(python3 scripts/doc-apps.py "$out"); do
  name=$(basename "$app")
  # The workspace's lockfile: the same versions it is tested with (cargo drops the rest).
  cp Cargo.lock "$app/"
  case "$name" in
    browser)
      echo "doc app $name: cargo check --target wasm32-unknown-unknown"
      (cd "$app" && cargo check -q --target wasm32-unknown-unknown) ;;
    *)
      echo "doc app $name: cargo build"
      (cd "$app" && cargo build -q) ;;
  esac
done
echo "the apps of docs/native.md and docs/browser.md build from their snippets outside the repository"
