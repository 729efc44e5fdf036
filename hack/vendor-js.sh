#!/usr/bin/env bash
# Installs the browser libraries pinned in hack/vendor-js/package-lock.json
# from npm into a temporary directory and copies the files Paddock serves into
# static/vendor/, so that building Paddock needs no npm.
#
#   hack/vendor-js.sh           refresh static/vendor/{novnc,xterm}
#   hack/vendor-js.sh --check   fail if static/vendor differs from what npm gives
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
[[ "${1:-}" == "--check" ]] && check=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp hack/vendor-js/package.json hack/vendor-js/package-lock.json "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)

out="$work/out"
mods="$work/node_modules"
# noVNC is ES modules that import each other by relative path: keep its
# core/ and vendor/ trees side by side, JavaScript and licences only.
mkdir -p "$out/novnc"
(cd "$mods/@novnc/novnc" && find core vendor -name '*.js' -o -name 'LICENSE*' | sort | while read -r f; do
  mkdir -p "$out/novnc/$(dirname "$f")"
  cp "$f" "$out/novnc/$f"
done)
cp "$mods/@novnc/novnc/LICENSE.txt" "$out/novnc/LICENSE.txt"
mkdir -p "$out/xterm"
cp "$mods/@xterm/xterm/lib/xterm.js" "$mods/@xterm/xterm/css/xterm.css" "$out/xterm/"
cp "$mods/@xterm/xterm/LICENSE" "$out/xterm/LICENSE"
cp "$mods/@xterm/addon-fit/lib/addon-fit.js" "$out/xterm/"
# The source maps are left out: they name files that are not served.
sed -i '/^\/\/# sourceMappingURL=/d' "$out/xterm/xterm.js" "$out/xterm/addon-fit.js"

if ((check)); then
  diff -r "$out/novnc" static/vendor/novnc && diff -r "$out/xterm" static/vendor/xterm || {
    echo "static/vendor differs from hack/vendor-js: run hack/vendor-js.sh and commit"; exit 1; }
  exit 0
fi
rm -rf static/vendor/novnc static/vendor/xterm
cp -r "$out/novnc" "$out/xterm" static/vendor/
echo "vendored into static/vendor: $(cd "$mods" && for p in @novnc/novnc @xterm/xterm @xterm/addon-fit; do printf '%s@%s ' "$p" "$(node -p "require('./$p/package.json').version")"; done)"
