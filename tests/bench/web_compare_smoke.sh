#!/usr/bin/env bash
# bench/web_compare.sh --quick, so the web-against-TCP script cannot rot: every scenario tiny,
# once, against the chatserver of the build. Passes when the output has the four tables, a row
# for every kind of client in each, the by-kind rows of the mixed room, and no failed run.
#
# usage: web_compare_smoke.sh BUILD_DIR   (the build with chatserver and chatbench)
set -euo pipefail
build=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$build/web-compare-smoke
out=$work/tables.md
rm -rf "$work"
mkdir -p "$work"
"$repo/bench/web_compare.sh" --quick --no-build --build "$build" --work "$work" >"$out"

fail() { echo "web_compare_smoke: $*" >&2; cat "$out" >&2; exit 1; }
for title in "### Saturation" "### Sustained" "### Latency at 100 messages/s" "### Scale"; do
  grep -q "^$title" "$out" || fail "no table '$title'"
done
[ "$(grep -c '^| chat |' "$out")" -eq 4 ] || fail "expected 4 chat rows"
[ "$(grep -c '^| ws |' "$out")" -eq 3 ] || fail "expected 3 ws rows"
[ "$(grep -c '^| mixed |' "$out")" -eq 3 ] || fail "expected 3 mixed rows"
# The mixed rooms by kind (saturation, rate, scale): figures, not "-".
[ "$(grep -cE '^\| web \| [0-9]' "$out")" -eq 3 ] || fail "expected 3 web rows with figures"
[ "$(grep -cE '^\| tcp \| [0-9]' "$out")" -eq 3 ] || fail "expected 3 tcp rows with figures"
if grep -q FAILED "$out"; then fail "a run failed"; fi
echo "web_compare_smoke: ok"
