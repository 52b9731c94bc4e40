#!/usr/bin/env bash
# bench/compare.sh --quick, so the side-by-side script cannot rot: every scenario against
# chatserver and the three peers, tiny. Passes when the page has all six tables, a row for every
# server in each, and chatserver's rows show no failure (in the table of the client that stops
# reading, chatbench detect's one run: the cause too-slow). (A peer's failure is a finding the page
# reports, not a failure of the script; ncat, for one, wedges or exits when many clients come.)
#
# usage: compare_smoke.sh BUILD_DIR   (the build with chatserver and chatbench)
set -euo pipefail
build=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$build/compare-smoke
out=$work/performance.md
rm -rf "$work"
mkdir -p "$work"
"$repo/bench/compare.sh" --quick --build "$build" --work "$work" --out "$out"

fail() { echo "compare_smoke: $*" >&2; cat "$out" >&2; exit 1; }
for title in "### Saturation" "### Sustained saturation" "### Latency at a moderate rate" "### Join storm" "### Scale" \
  '### A client that stops reading: detect --case "not reading"'; do
  grep -q "^$title" "$out" || fail "no table '$title'"
done
for row in "| chatserver |" "| ngircd 26 |" "| ncat --chat |" "| Asio chat example |" "| chatserver --probe epoll |"; do
  grep -qF "$row" "$out" || fail "no row '$row'"
done
# Every chatserver row of the six tables: figures, no failure.
[ "$(grep -cF '| chatserver |' "$out")" -eq 6 ] || fail "expected 6 chatserver rows"
# The client that stops reading: one run, the cause too-slow, a time and what the observer had sent.
grep -A12 '^### A client that stops reading' "$out" | grep -qE '^\| chatserver \| 1 \| too-slow \| [0-9.]+ \| [0-9]+ \| [^ -][^|]* \|$' ||
  fail "no too-slow row for the client that stops reading"
# The sustained table reports the server's CPU per delivery (a number, not "-", in chatserver's row).
grep -A12 '^### Sustained' "$out" | grep -qE '^\| server \|.*ns per delivery' || fail "no CPU per delivery column"
if grep -E '^\| chatserver( --probe epoll)? \|' "$out" | grep -q FAILED; then fail "chatserver failed"; fi
grep -q '<!-- compare.sh:end -->' "$out" || fail "the page is not complete"
echo "compare_smoke: ok"
