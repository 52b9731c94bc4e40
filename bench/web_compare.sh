#!/usr/bin/env bash
# bench/web_compare.sh: chatserver's web clients (the chat protocol over a WebSocket, one line per
# text frame) next to its TCP line clients, on 127.0.0.1 of this machine: every configuration
# run N times, interleaved (run 1 of each, then run 2 of each, ...), so that a noisy machine
# spreads its noise over all of them; then one Markdown table per scenario with the median of
# the runs and their range. It prints the tables; docs/performance.md ("Web clients") quotes them.
#
#   bench/web_compare.sh                    every scenario, 3 runs each (~8 min on 2 cores)
#   bench/web_compare.sh --only max,rate    some scenarios: max, long, rate, scale
#   bench/web_compare.sh --profile          adds perf profiles of chatserver (perf record -g -p)
#   bench/web_compare.sh --no-run           the tables again from the last results
#   bench/web_compare.sh --quick            a tiny version of every scenario, once (the test suite's smoke)
#
# The scenarios (chatbench starts chatserver afresh for every run; --protocol ws: every client a
# WebSocket; --protocol mixed: every second client, in one room with the TCP clients):
#   max    fanout --max, 100 clients, 10 senders x 1,000 messages of 64 B: chat, ws, mixed
#   long   the same with 10,000 messages each, long enough for the server's CPU per delivery
#   rate   fanout --rate 100 (per sender), 100 clients, 10 senders x 1,000 messages: latency
#   scale  scale --clients 10000: chat, and mixed (5,000 web clients, 5,000 TCP)
# The JSON and stderr of every run stay in --work (build/web-compare).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

RUNS=3
BUILD=build/release
WORK=build/web-compare
ONLY="max,long,rate,scale"
PROFILE=0
NO_RUN=0
NO_BUILD=0
QUICK=0

usage() {
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
  echo "options: --runs N  --only LIST  --profile  --no-run  --build DIR (default build/release)  --work DIR"
  echo "         --no-build (use the chatserver and chatbench in --build as they are)"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --no-run) NO_RUN=1; shift ;;
    --no-build) NO_BUILD=1; shift ;;
    --quick) QUICK=1; shift ;;
    --build) BUILD=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "web_compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "web_compare.sh: --runs takes a number" >&2; exit 2; }
command -v jq >/dev/null || { echo "web_compare.sh: needs jq (apt-get install jq)" >&2; exit 2; }
if [ "$NO_BUILD" = 0 ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAT_BUILD_TESTS=OFF >/dev/null
  fi
  cmake --build "$BUILD" -j "$(nproc)" --target chatserver chatbench >/dev/null
fi
CHATBENCH=$BUILD/bench/chatbench
CHATSERVER=$BUILD/server/chatserver
mkdir -p "$WORK"
log() { echo "web_compare.sh: $*" >&2; }

if [ "$QUICK" = 1 ]; then
  RUNS=1
  FANOUT_MAX=(fanout --max --clients 10 --senders 2 --msgs 50)
  FANOUT_LONG=(fanout --max --clients 10 --senders 2 --msgs 500)
  FANOUT_RATE=(fanout --rate 100 --clients 10 --senders 2 --msgs 20)
  SCALE=(scale --clients 60 --duration 1 --idle 1 --rate 10 --patience 10)
else
  FANOUT_MAX=(fanout --max --clients 100 --senders 10 --msgs 1000 --size 64)
  FANOUT_LONG=(fanout --max --clients 100 --senders 10 --msgs 10000 --size 64)
  FANOUT_RATE=(fanout --rate 100 --clients 100 --senders 10 --msgs 1000 --size 64)
  SCALE=(scale --clients 10000)
fi
KINDS=(chat ws mixed)

want() { [[ ",$ONLY," == *",$1,"* ]]; }

# run_one SCENARIO KIND RUN ARGS...: one chatbench run, its JSON in $WORK/SCENARIO-KIND-RUN.json.
run_one() {
  local scenario=$1 kind=$2 run=$3
  shift 3
  local json=$WORK/$scenario-$kind-$run.json
  local cmd=("$CHATBENCH" --json --protocol "$kind" "$@")
  [ "$run" = 1 ] && echo "$scenario $kind: ${cmd[*]}" >>"$WORK/commands.txt"
  log "$scenario, $kind, run $run"
  # Bounded: chatbench stops by itself; the timeout is a backstop.
  timeout 900 "${cmd[@]}" >"$json" 2>"$WORK/$scenario-$kind-$run.log" || true
  [ -s "$json" ] || echo '{"error": "no result: see the log"}' >"$json"
}

# run_scenario NAME KINDS -- ARGS...: RUNS rounds, each running every kind once.
run_scenario() {
  local name=$1 kinds=$2 run kind
  shift 3
  for ((run = 1; run <= RUNS; run++)); do
    for kind in $kinds; do run_one "$name" "$kind" "$run" "$@"; done
  done
}

if [ "$NO_RUN" = 0 ]; then
  : >"$WORK/commands.txt"
  date -u '+%Y-%m-%d %H:%M UTC' >"$WORK/started_at"
  want max && run_scenario max "${KINDS[*]}" -- "${FANOUT_MAX[@]}"
  want long && run_scenario long "chat ws" -- "${FANOUT_LONG[@]}"
  want rate && run_scenario rate "${KINDS[*]}" -- "${FANOUT_RATE[@]}"
  want scale && run_scenario scale "chat mixed" -- "${SCALE[@]}"
fi

# ---- the tables ---------------------------------------------------------------------------------
# cell SCENARIO KIND JQ-EXPR FORMAT: "median (min-max)" over the runs, or "-".
cell() {
  local scenario=$1 kind=$2 expr=$3 fmt=$4 values=() v run
  for ((run = 1; run <= RUNS; run++)); do
    v=$(jq -r "($expr) // empty" "$WORK/$scenario-$kind-$run.json" 2>/dev/null || true)
    [ -n "$v" ] && [ "$v" != null ] && values+=("$v")
  done
  if [ "${#values[@]}" = 0 ]; then
    echo "-"
    return
  fi
  mapfile -t values < <(printf '%s\n' "${values[@]}" | sort -g)
  local n=${#values[@]} median
  if ((n % 2 == 1)); then
    median=${values[$((n / 2))]}
  else
    median=$(echo "${values[$((n / 2 - 1))]} ${values[$((n / 2))]}" | awk '{print ($1 + $2) / 2}')
  fi
  # shellcheck disable=SC2059
  printf "$fmt ($fmt-$fmt)" "$median" "${values[0]}" "${values[$((n - 1))]}"
}
# failures SCENARIO KIND: the runs that did not pass, or nothing.
failures() {
  local scenario=$1 kind=$2 run out=""
  for ((run = 1; run <= RUNS; run++)); do
    if [ "$(jq -r '.ok // false' "$WORK/$scenario-$kind-$run.json" 2>/dev/null)" != true ]; then
      out+=" run $run: $(jq -r '[.. | .error? // empty] | first // "check failed"' "$WORK/$scenario-$kind-$run.json" 2>/dev/null | cut -c1-120);"
    fi
  done
  [ -z "$out" ] || echo " **FAILED**:$out"
}
# ratio SCENARIO KIND-A KIND-B JQ-EXPR: median of A's over median of B's.
median_of() {
  local scenario=$1 kind=$2 expr=$3 run
  for ((run = 1; run <= RUNS; run++)); do
    jq -r "($expr) // empty" "$WORK/$scenario-$kind-$run.json" 2>/dev/null || true
  done | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() {
  local a b
  a=$(median_of "$1" "$2" "$4")
  b=$(median_of "$1" "$3" "$4")
  if [ -z "$a" ] || [ -z "$b" ]; then echo "-"; else awk -v a="$a" -v b="$b" 'BEGIN {if (b == 0) print "-"; else printf "%.2f", a / b}'; fi
}

fanout_table() {
  local scenario=$1 title=$2 kinds=$3 kind
  echo "### $title"
  echo
  echo "| clients | deliveries/s | ÷ chat | latency p50 ms | p99 ms | max ms | server CPU ns per delivery | chatbench CPU % |"
  echo "|---|---|---|---|---|---|---|---|"
  for kind in $kinds; do
    local f=.fanout
    echo "| $kind | $(cell "$scenario" "$kind" "$f.deliveries_per_second" %.0f)$(failures "$scenario" "$kind") |" \
      "$(ratio "$scenario" "$kind" chat "$f.deliveries_per_second") |" \
      "$(cell "$scenario" "$kind" "$f.latency_ms.p50" %.2f) | $(cell "$scenario" "$kind" "$f.latency_ms.p99" %.2f) |" \
      "$(cell "$scenario" "$kind" "$f.latency_ms.max" %.1f) |" \
      "$(cell "$scenario" "$kind" "$f.server_cpu_ns_per_delivery" %.0f) | $(cell "$scenario" "$kind" "$f.generator_cpu_percent" %.0f) |"
  done
  if [[ " $kinds " == *" mixed "* ]]; then
    echo
    echo "The mixed room (half web, half TCP clients, senders of both kinds), by the kind of client that received:"
    echo
    echo "| receivers | deliveries/s per client | latency p50 ms | p99 ms | max ms |"
    echo "|---|---|---|---|---|"
    for kind in web tcp; do
      local k=.fanout.by_kind.$kind
      echo "| $kind | $(cell "$scenario" mixed "$k.deliveries_per_second_per_client" %.0f) |" \
        "$(cell "$scenario" mixed "$k.latency_ms.p50" %.2f) | $(cell "$scenario" mixed "$k.latency_ms.p99" %.2f) |" \
        "$(cell "$scenario" mixed "$k.latency_ms.max" %.1f) |"
    done
    echo "| web ÷ tcp (per run, then the median) | $(cell "$scenario" mixed .fanout.by_kind.web_over_tcp.per_client %.2f) |" \
      "$(cell "$scenario" mixed .fanout.by_kind.web_over_tcp.p50 %.2f) | $(cell "$scenario" mixed .fanout.by_kind.web_over_tcp.p99 %.2f) | |"
  fi
  echo
}

scale_table() {
  local kind
  echo "### Scale: ${SCALE[*]} (mixed: half of the clients web)"
  echo
  echo "| clients | in the room | join ms | RSS MiB after the join | chat p50 ms | chat p99 ms | one message to all, ms | idle CPU % | chatbench CPU % |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for kind in chat mixed; do
    local s=.scale
    echo "| $kind | $(cell scale "$kind" "$s.joined" %.0f)$(failures scale "$kind") | $(cell scale "$kind" "$s.last_join_ms" %.0f) |" \
      "$(cell scale "$kind" "$s.after_join.rss_mib" %.0f) | $(cell scale "$kind" "$s.chat.p50_ms" %.2f) |" \
      "$(cell scale "$kind" "$s.chat.p99_ms" %.2f) | $(cell scale "$kind" "$s.round.ms_to_last" %.0f) |" \
      "$(cell scale "$kind" "$s.idle_cpu_percent" %.1f) | $(cell scale "$kind" "$s.generator_cpu_percent" %.0f) |"
  done
  echo
  echo "The mixed room by the kind of client that received:"
  echo
  echo "| receivers | chat p50 ms | chat p99 ms | chat max ms | one message to all: the last of them, ms |"
  echo "|---|---|---|---|---|"
  for kind in web tcp; do
    local c=.scale.chat.by_kind.$kind r=.scale.round.by_kind.$kind
    echo "| $kind | $(cell scale mixed "$c.latency_ms.p50" %.2f) | $(cell scale mixed "$c.latency_ms.p99" %.2f) |" \
      "$(cell scale mixed "$c.latency_ms.max" %.1f) | $(cell scale mixed "$r.seconds * 1000" %.0f) |"
  done
  echo
}

echo "Measured $(cat "$WORK/started_at" 2>/dev/null || echo "?") on $(nproc) cores" \
  "($(sed -nE 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo | head -1)), Linux $(uname -r);" \
  "chatserver at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':(exclude)docs' || echo ' plus uncommitted changes')."
echo "Each cell: the median of $RUNS runs and their range, the configurations interleaved."
echo
want max && fanout_table max "Saturation: ${FANOUT_MAX[*]}" "${KINDS[*]}"
want long && fanout_table long "Sustained: ${FANOUT_LONG[*]}" "chat ws"
want rate && fanout_table rate "Latency at 100 messages/s per sender: ${FANOUT_RATE[*]}" "${KINDS[*]}"
want scale && scale_table
echo "The commands:"
echo
echo '```'
sed "s|$(pwd)/||g" "$WORK/commands.txt"
echo '```'

# ---- optional: profiles -------------------------------------------------------------------------
if [ "$PROFILE" = 1 ]; then
  command -v perf >/dev/null || { echo "web_compare.sh: --profile needs perf (apt-get install linux-perf)" >&2; exit 2; }
  # profile KIND: chatserver started here (so its pid is known), perf record -g -p on it while
  # chatbench runs the sustained fanout over KIND; the top symbols, all threads together.
  profile() {
    local kind=$1 data=$WORK/perf-$1.data err=$WORK/perf-$1-server.log
    if [ "$NO_RUN" = 0 ] || [ ! -f "$data" ]; then
      # (stdout to /dev/null: a server left behind must not hold the caller's pipe open. The old
      # log goes first: the shell truncates it in the child, maybe after the first look below.)
      rm -f "$err"
      "$CHATSERVER" --bind 127.0.0.1 --port 0 --max-per-ip 0 --max-rate 0 --log-level warn >/dev/null 2>"$err" &
      local pid=$! port="" i
      for ((i = 0; i < 300; i++)); do
        port=$(sed -nE 's/^chatserver listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$err" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
      done
      if [ -z "$port" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        echo "web_compare.sh: chatserver did not start: $(head -3 "$err")" >&2
        return 1
      fi
      perf record -F 999 -g -p "$pid" -o "$data" -- \
        "$CHATBENCH" --protocol "$kind" --port "$port" --server-pid "$pid" "${FANOUT_LONG[@]}" \
        >"$WORK/perf-$kind.txt" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    echo "#### $kind: \`perf record -g -p <chatserver>\` during \`chatbench --protocol $kind ${FANOUT_LONG[*]}\`"
    echo
    echo '```'
    perf report -i "$data" --no-children --sort sym -g none --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -15 || true
    echo '```'
    echo
  }
  profile chat
  profile ws
fi
