#!/usr/bin/env bash
# bench/compare.sh: chatserver next to ngircd, `ncat --chat` and the Asio chat example, every
# scenario against every server in one run, on 127.0.0.1 of this machine; then rewrites the
# measured part of docs/performance.md (between its compare.sh markers; the rest of the page,
# the analysis and the profile, is written by people).
#
#   bench/compare.sh                       every scenario, 3 runs each (scale: 1), ~30 min
#   bench/compare.sh --baseline f500d89    adds a column for chatserver built from that commit
#   bench/compare.sh --profile             adds perf profiles of chatserver (saturation, join storm)
#   bench/compare.sh --quick --out FILE    a tiny version of every scenario (the test suite's smoke)
#   bench/compare.sh --only fanout,join    some scenarios only (fanout sustained rate join scale slow)
#   bench/compare.sh --only slow           a client that stops reading: chatserver (and --baseline)
#   bench/compare.sh --no-run              rewrite the page from the last results (build/compare)
#
# What it does, in order:
#   1. installs what is missing from Debian (ncat, ngircd, libasio-doc, jq; linux-perf with
#      --profile) and builds chatserver and chatbench (build/release) and the Asio example
#      (build/peers, compiled from /usr/share/doc/libasio-dev/examples; never copied here);
#   2. for every scenario, server and run: starts the server afresh (chatbench starts chatserver
#      itself; bench/peers.sh starts the peers, on 127.0.0.1 with the configs it writes), runs
#      chatbench --json against it, keeps the JSON and the log in build/compare/, and stops the
#      server by its pid;
#   3. writes the tables: each server's figures (median of the runs, and the range) and its ratio
#      to chatserver, a failed run written in its cell, the machine, the date and the commands.
#
# The scenario `slow` (a client that stops reading) is `chatbench detect --case "not reading"
# --runs N`: one chatbench call per server holds the N runs, and it runs on chatserver and the
# --baseline only, since detect reads chatserver's LEAVE causes, which the peers do not send. A
# baseline without one of the case's options fails its runs; its cell says so.
#
# chatserver runs with its defaults, as the peers do with theirs, except --max-clients (sized
# for the scenario) and its two limits meant for people, which every benchmark client (all from
# 127.0.0.1, sending as fast as they can) would meet: chatbench starts it with --max-per-ip 0
# --max-rate 0 (bench/child_process.hpp), as ngircd runs with its flood control off (peers.sh).
# Everything stops by itself; an interruption stops what was started (by pid).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
REPO=$(pwd)
# shellcheck source=bench/peers.sh
source bench/peers.sh

RUNS=3
SCALE_RUNS=1
BASELINE=""
PROFILE=0
NO_RUN=0
QUICK=0
ONLY="fanout,sustained,rate,join,scale,slow"
OUT=docs/performance.md
WORK=build/compare
BUILD=build/release

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --runs N  --scale-runs N  --baseline REV  --profile  --quick  --only LIST  --out FILE"
  echo "         --build DIR (the CMake build with chatserver and chatbench; default build/release)"
  echo "         --work DIR (raw results; default build/compare)"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --scale-runs) SCALE_RUNS=$2; shift 2 ;;
    --baseline) BASELINE=$2; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --no-run) NO_RUN=1; shift ;;
    --quick) QUICK=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ && $SCALE_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --runs takes a number" >&2; exit 2; }

# The scenarios (docs/performance.md explains each). --quick keeps their shape, shrinks them.
if [ "$QUICK" = 1 ]; then
  RUNS=1 SCALE_RUNS=1
  FANOUT_MAX=(fanout --max --clients 10 --senders 2 --msgs 50)
  FANOUT_LONG=(fanout --max --clients 10 --senders 2 --msgs 500)
  FANOUT_RATE=(fanout --rate 100 --clients 10 --senders 2 --msgs 20)
  # ncat wedges a client or two when many connect at once: short patience keeps this quick.
  JOIN=(join --clients 50 --round-senders 3 --patience 10)
  SCALE=(scale --clients 60 --duration 1 --idle 1 --rate 10 --patience 10)
else
  FANOUT_MAX=(fanout --max --clients 100 --senders 10 --msgs 1000 --size 64)
  FANOUT_LONG=(fanout --max --clients 100 --senders 10 --msgs 10000 --size 64)  # long enough for CPU figures
  FANOUT_RATE=(fanout --rate 100 --clients 100 --senders 10 --msgs 1000 --size 64)
  JOIN=(join --clients 2000)
  SCALE=(scale --clients 10000)
fi
# The issue's non-reader (bench/detect.hpp): its runs are chatbench's own (--runs), in one call.
SLOW=(detect --case "not reading" --runs "$RUNS")
# Where a detect row is in chatbench's JSON: --case picks one.
SLOW_ROW='.detect[0]'

log() { echo "compare.sh: $*" >&2; }

# ---- 1. install and build -----------------------------------------------------------------------
PEERS_PACKAGES+=(jq cmake make libcli11-dev)
[ "$PROFILE" = 0 ] || PEERS_PACKAGES+=(linux-perf)
peers_install
peers_build_asio
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAT_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD" -j "$(nproc)" --target chatserver chatbench >/dev/null
BUILD=$(cd "$BUILD" && pwd)
CHATBENCH=$BUILD/bench/chatbench

SERVERS=(chatserver)
if [ -n "$BASELINE" ]; then
  # The same build, of another commit, in build/compare/baseline (from git archive: no worktree).
  rev=$(git rev-parse --short "$BASELINE")
  base=$WORK/baseline-$rev
  if [ ! -x "$base/build/server/chatserver" ]; then
    log "building chatserver at $rev in $base"
    rm -rf "$base" && mkdir -p "$base/src"
    git archive "$rev" | tar -x -C "$base/src"
    cmake -S "$base/src" -B "$base/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAT_BUILD_TESTS=OFF \
      -DCHAT_BUILD_BENCH=OFF >/dev/null
    cmake --build "$base/build" -j "$(nproc)" --target chatserver >/dev/null
  fi
  BASELINE_BIN=$(cd "$base/build/server" && pwd)/chatserver
  BASELINE_NAME="chatserver $rev"
  SERVERS+=(baseline)
fi
# The servers that send chatserver's LEAVE causes: chatbench detect can measure only these.
DETECT_SERVERS=("${SERVERS[@]}")
SERVERS+=(ngircd ncat asio)

mkdir -p "$WORK"
STARTED=()  # pids of peers running now
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do peers_stop "$pid" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

label_of() {
  case "$1" in
    chatserver) echo "chatserver" ;;
    epoll) echo "chatserver --probe epoll" ;;
    baseline) echo "$BASELINE_NAME" ;;
    ngircd) echo "ngircd 26" ;;
    ncat) echo "ncat --chat" ;;
    asio) echo "Asio chat example" ;;
  esac
}

protocol_of() {
  case "$1" in
    chatserver | epoll | baseline) echo chat ;;
    ngircd) echo irc ;;
    ncat) echo line ;;
    asio) echo asio ;;
  esac
}

# The commands, as run, for the page.
COMMANDS=()

# run_one SCENARIO SERVER RUN ARGS...: one chatbench run; JSON in $WORK/SCENARIO-SERVER-RUN.json.
run_one() {
  local scenario=$1 server=$2 run=$3
  shift 3
  local json=$WORK/$scenario-$server-$run.json errlog=$WORK/$scenario-$server-$run.log
  local cmd=("$CHATBENCH" --json)
  case "$server" in
    chatserver) cmd+=("$@") ;;
    epoll) cmd+=(--server-arg=--probe --server-arg=epoll "$@") ;;
    baseline) cmd+=(--server "$BASELINE_BIN" "$@") ;;
    *)
      if ! peers_start "$server" >/dev/null; then
        echo '{"error": "the server did not start"}' >"$json"
        return 0
      fi
      STARTED+=("$PEERS_PID")
      cmd+=(--protocol "$(protocol_of "$server")" --port "$PEERS_PORT" --server-pid "$PEERS_PID"
        --label "$(label_of "$server")" "$@")
      ;;
  esac
  if [ "$run" = 1 ]; then
    # As a person would type it: the peer's port and pid are whatever peers.sh picked.
    local shown
    shown=$(printf '%q ' "${cmd[@]#"$REPO/"}")
    shown=$(sed -E 's/--port [0-9]+/--port PORT/; s/--server-pid [0-9]+/--server-pid PID/' <<<"$shown")
    COMMANDS+=("$(label_of "$server"): $shown")
    echo "$(label_of "$server"): $shown" >>"$WORK/commands.txt"
  fi
  log "$scenario, $(label_of "$server"), run $run: ${*}"
  local code=0
  # Bounded: chatbench stops by itself; the timeout is a backstop against a wedged peer.
  timeout 900 "${cmd[@]}" >"$json" 2>"$errlog" || code=$?
  if [ ! -s "$json" ]; then
    # No JSON: chatbench could not run (the server refused everything, or died): say why.
    jq -n --arg e "$(grep -v '^  \.\.\.' "$errlog" | tail -1)" --argjson c "$code" '{error: $e, exit: $c}' >"$json"
  fi
  if [ "${#STARTED[@]}" -gt 0 ]; then
    local pid=${STARTED[-1]}
    if ! peers_alive "$pid"; then
      # A peer that died during the run: its cell says so.
      jq '. + {server_died: true}' "$json" >"$json.tmp" && mv "$json.tmp" "$json"
    fi
    peers_stop "$pid" || true
    unset 'STARTED[-1]'
  fi
}

# run_scenario NAME RUNS SERVERS... -- ARGS...
run_scenario() {
  local name=$1 runs=$2
  shift 2
  local servers=()
  while [ "$1" != -- ]; do servers+=("$1"); shift; done
  shift
  local run server
  for ((run = 1; run <= runs; run++)); do
    for server in "${servers[@]}"; do run_one "$name" "$server" "$run" "$@"; done
  done
}

# ---- 2. the runs ------------------------------------------------------------------------------------
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# The long runs leave out the servers that would take minutes per run at a tenth of the others'
# rate (the Asio example, the chatserver before the rebuild): the short runs above measure them.
FAST_PEERS=(ngircd ncat)
# ncat exits at its 1,021st client (select(), FD_SETSIZE): it is run anyway, and its cell says so.
# The baseline is left out of scale: the chatserver before the rebuild needs minutes of CPU to join
# 10,000 clients (every JOIN went to every member's own queue and thread).
PEERS_ONLY=(ngircd ncat asio)
if [ "$NO_RUN" = 0 ]; then
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "$STARTED_AT" >"$WORK/started_at"
# The commit measured: the one chatserver was built from above, whatever is committed meanwhile
# (changes to docs/ alone do not make the build "plus uncommitted changes").
MEASURED_REV="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':(exclude)docs' || echo ' plus uncommitted changes')"
echo "$MEASURED_REV" >"$WORK/measured_rev"
: >"$WORK/commands.txt"
want fanout && run_scenario fanout "$RUNS" "${SERVERS[@]}" -- "${FANOUT_MAX[@]}"
want sustained && run_scenario sustained "$RUNS" chatserver "${FAST_PEERS[@]}" -- "${FANOUT_LONG[@]}"
want rate && run_scenario rate "$RUNS" "${SERVERS[@]}" -- "${FANOUT_RATE[@]}"
want join && run_scenario join "$RUNS" "${SERVERS[@]}" -- "${JOIN[@]}"
want scale && run_scenario scale "$SCALE_RUNS" chatserver epoll "${PEERS_ONLY[@]}" -- "${SCALE[@]}"
want slow && run_scenario slow 1 "${DETECT_SERVERS[@]}" -- "${SLOW[@]}"
else
  STARTED_AT=$(cat "$WORK/started_at" 2>/dev/null || echo "?")
  MEASURED_REV=$(cat "$WORK/measured_rev" 2>/dev/null || echo "?")
  mapfile -t COMMANDS <"$WORK/commands.txt"
fi

# ---- optional: profiles of chatserver -------------------------------------------------------------
PROFILES=""
if [ "$PROFILE" = 1 ]; then
  # System-wide (a 2,000-thread process is too many for perf -p), kept to chatserver's threads
  # by command name when reported. The perf.data files stay in build/compare/.
  profile_one() {
    local name=$1
    shift
    local data=$WORK/perf-${name//[^a-z0-9-]/_}.data
    # --no-run: the report is made again from the recording of the last run, if there is one.
    if [ "$NO_RUN" = 0 ] || [ ! -f "$data" ]; then
      perf record -F 999 -a -g -o "$data" -- "$CHATBENCH" "$@" >/dev/null 2>"${data%.data}.log" || true
    fi
    # (Pipelines cut short by head: their SIGPIPE is no error here.)
    {
      echo "#### $name: \`chatbench ${*#"$REPO/"}\`"
      echo
      echo "By thread (share of all samples on the machine, chatbench's own included):"
      echo
      echo '```'
      perf report -i "$data" --no-children --sort comm -g none --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | head -12 || true
      echo '```'
      echo
      # By thread and function: with --sort dso,sym alone, perf merges a function's samples from
      # every process before it applies --comms, and chatbench's share of a libc function shows
      # up as chatserver's.
      echo "chatserver's hottest functions, by thread (share of all samples):"
      echo
      echo '```'
      perf report -i "$data" --no-children --sort comm,dso,sym -g none --stdio \
        --comms "$(perf report -i "$data" --no-children --sort comm -g none --stdio 2>/dev/null |
          sed -nE 's/^ +[0-9.]+% +(.*[^ ]) *$/\1/p' | grep -vE '^(chatbench|perf|swapper|kworker|kdamond|ksoftirq|rcu_)' |
          paste -sd, -)" 2>/dev/null |
        grep -E '^ +[0-9]' | head -15 || true
      echo '```'
      echo
    } >>"$WORK/profiles.md"
  }
  : >"$WORK/profiles.md"
  profile_one saturation "${FANOUT_LONG[@]}"
  profile_one join-storm "${JOIN[@]}"
  if [ -n "$BASELINE" ]; then
    # The same two loads on the chatserver before the rebuild: where its time went.
    profile_one "saturation, $BASELINE_NAME" --server "$BASELINE_BIN" "${FANOUT_MAX[@]}"
    profile_one "join-storm, $BASELINE_NAME" --server "$BASELINE_BIN" "${JOIN[@]}"
  fi
  PROFILES=$(cat "$WORK/profiles.md")
fi

# ---- 3. the tables ----------------------------------------------------------------------------------
# A figure from every run of SCENARIO on SERVER: prints "median (min-max)" or "-". JQ-EXPR may
# yield several values from one file: the runs inside one chatbench call (slow: `.ms[]`).
# figure SCENARIO SERVER RUNS JQ-EXPR FORMAT
figure() {
  local scenario=$1 server=$2 runs=$3 expr=$4 fmt=$5 values=() v run
  for ((run = 1; run <= runs; run++)); do
    while IFS= read -r v; do
      [ -n "$v" ] && [ "$v" != null ] && values+=("$v")
    done < <(jq -r "($expr) // empty" "$WORK/$scenario-$server-$run.json" 2>/dev/null || true)
  done
  [ ${#values[@]} -gt 0 ] || { echo "-"; return; }
  printf '%s\n' "${values[@]}" | sort -g | awk -v fmt="$fmt" '
    { a[NR] = $1 }
    END {
      m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      out = sprintf(fmt, m)
      if (NR > 1) out = out sprintf(" (" fmt "-" fmt ")", a[1], a[NR])
      print out
    }'
}

# The median alone, as a number, for ratios (JQ-EXPR as for figure).
median() {
  local scenario=$1 server=$2 runs=$3 expr=$4 values=() v run
  for ((run = 1; run <= runs; run++)); do
    while IFS= read -r v; do
      [ -n "$v" ] && [ "$v" != null ] && values+=("$v")
    done < <(jq -r "($expr) // empty" "$WORK/$scenario-$server-$run.json" 2>/dev/null || true)
  done
  [ ${#values[@]} -gt 0 ] || return 0
  printf '%s\n' "${values[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# A text from the first run of SCENARIO on SERVER (jq -r JQ-EXPR), for a cell: "-" when there is none.
# text_of SCENARIO SERVER JQ-EXPR
text_of() {
  local v
  v=$(jq -r "($3) // empty" "$WORK/$1-$2-1.json" 2>/dev/null | head -1 || true)
  v=${v//|/\\|}
  echo "${v:--}"
}

# ratio A B: A / B with two decimals, or "-".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

# What went wrong in the runs of SCENARIO on SERVER (empty when all were ok). KEY is the mode's
# part of chatbench's JSON; for detect (an array of rows) its first row: a run inside that saw no
# LEAVE, or a cause other than the one expected.
failures() {
  local scenario=$1 server=$2 runs=$3 key=$4 run f out=""
  for ((run = 1; run <= runs; run++)); do
    f=$WORK/$scenario-$server-$run.json
    [ -f "$f" ] || continue
    local text
    text=$(jq -r --arg k "$key" '
      (.[$k] | if type == "array" then .[0] else . end) as $r
      | if .server_died then "the server died during the run"
      elif ($r == null) then (.error // "no result")
      elif $r.ok then empty
      else [ ($r.error // empty),
             (if ($r.check.lost // 0) > 0 then "\($r.check.lost) lost" else empty end),
             (if ($r.check.corrupt // 0) > 0 then "\($r.check.corrupt) corrupted" else empty end),
             (if ($r.check.order_violations // 0) > 0 then "order differs at \($r.check.order_violations)" else empty end),
             (if ($r.timed_out // false) then "not all in the room in time" else empty end),
             (if ($r.refused // 0) > 0 then "\($r.refused) refused" else empty end),
             (if ($r.dropped // 0) > 0 then "\($r.dropped) dropped" else empty end),
             (if ($r.ended_during_run // 0) > 0 then "\($r.ended_during_run) dropped" else empty end),
             (if ($r.reasons // "") != "" then "(\($r.reasons))" else empty end),
             (if ($r.errors // []) != [] then
                "no LEAVE in \($r.errors | length) of \(($r.ms | length) + ($r.errors | length)) detect runs: \($r.errors[0] | split("\n")[0])"
              else empty end),
             (if ($r.causes // []) | any(. != $r.expected) then
                "LEAVE \([$r.causes[] | select(. != $r.expected)] | unique | join("/")) where \($r.expected) was expected"
              else empty end)
           ] | join(", ") end' "$f" 2>/dev/null || echo "unreadable result")
    [ -n "$text" ] && out+="run $run: ${text//|/\\|}; "
  done
  printf '%s' "${out%; }" | cut -c1-400
}

cell() {  # figure + failures
  local fig=$1 fail=$2
  if [ -n "$fail" ]; then echo "$fig **FAILED**: $fail"; else echo "$fig"; fi
}

# vs SERVER A B: "1" in chatserver's own row, else A / B.
vs() { if [ "$1" = chatserver ]; then echo 1; else ratio "$2" "$3"; fi; }

# row CELL...: one table row.
row() {
  local out="|" c
  for c in "$@"; do out+=" $c |"; done
  echo "$out"
}

page=$(mktemp)
{
  echo "<!-- compare.sh:begin (generated by bench/compare.sh; edits here are overwritten) -->"
  echo
  echo "Measured $STARTED_AT on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))," \
    "Linux $(uname -r), $(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release); chatserver at $MEASURED_REV."
  echo "Each cell: the median of $RUNS runs (scale: $SCALE_RUNS) and the range; every run starts the server afresh."
  echo "Ratios compare medians: above 1 means chatserver is better by that factor."
  echo

  if want fanout; then
    echo "### Saturation: ${FANOUT_MAX[*]}"
    echo
    echo "Deliveries per second count only deliveries to clients other than the sender; the checker"
    echo "verifies every message reached every receiver once, intact, in order (and, for chatserver,"
    echo "in the same global order everywhere). chatbench is one thread; its CPU tells when it was the limit."
    echo
    echo "| server | deliveries/s | chatserver ÷ it | latency p50 ms | p99 ms | server CPU % | server CPU ns per delivery | chatbench CPU % |"
    echo "|---|---|---|---|---|---|---|---|"
    base=$(median fanout chatserver "$RUNS" '.fanout.deliveries_per_second')
    for s in "${SERVERS[@]}"; do
      m=$(median fanout "$s" "$RUNS" '.fanout.deliveries_per_second')
      row "$(label_of "$s")" \
        "$(cell "$(figure fanout "$s" "$RUNS" '.fanout.deliveries_per_second' '%.0f')" "$(failures fanout "$s" "$RUNS" fanout)")" \
        "$(vs "$s" "$base" "$m")" \
        "$(figure fanout "$s" "$RUNS" '.fanout.latency_ms.p50' '%.1f')" \
        "$(figure fanout "$s" "$RUNS" '.fanout.latency_ms.p99' '%.1f')" \
        "$(figure fanout "$s" "$RUNS" '.fanout.server_cpu_percent' '%.0f')" \
        "$(figure fanout "$s" "$RUNS" '.fanout.server_cpu_ns_per_delivery' '%.0f')" \
        "$(figure fanout "$s" "$RUNS" '.fanout.generator_cpu_percent' '%.0f')"
    done
    echo
  fi

  if want sustained; then
    echo "### Sustained saturation: ${FANOUT_LONG[*]}"
    echo
    echo "Ten times the messages, so CPU figures are long enough to trust. Where chatbench's own CPU is"
    echo "near 100%, the generator, not the server, set the rate: the server's CPU per delivery then"
    echo "says what each server would need, and \"it ÷ chatserver\" compares those costs."
    echo "Left out: $(label_of asio)${BASELINE:+ and $BASELINE_NAME} (a tenth of the others' rate: minutes per run)."
    echo
    echo "| server | deliveries/s | chatserver ÷ it | latency p50 ms | server CPU % | server CPU ns per delivery | it ÷ chatserver (CPU per delivery) | chatbench CPU % |"
    echo "|---|---|---|---|---|---|---|---|"
    base=$(median sustained chatserver "$RUNS" '.fanout.deliveries_per_second')
    bns=$(median sustained chatserver "$RUNS" '.fanout.server_cpu_ns_per_delivery')
    for s in chatserver "${FAST_PEERS[@]}"; do
      m=$(median sustained "$s" "$RUNS" '.fanout.deliveries_per_second')
      mns=$(median sustained "$s" "$RUNS" '.fanout.server_cpu_ns_per_delivery')
      row "$(label_of "$s")" \
        "$(cell "$(figure sustained "$s" "$RUNS" '.fanout.deliveries_per_second' '%.0f')" "$(failures sustained "$s" "$RUNS" fanout)")" \
        "$(vs "$s" "$base" "$m")" \
        "$(figure sustained "$s" "$RUNS" '.fanout.latency_ms.p50' '%.1f')" \
        "$(figure sustained "$s" "$RUNS" '.fanout.server_cpu_percent' '%.0f')" \
        "$(figure sustained "$s" "$RUNS" '.fanout.server_cpu_ns_per_delivery' '%.0f')" \
        "$(vs "$s" "$mns" "$bns")" \
        "$(figure sustained "$s" "$RUNS" '.fanout.generator_cpu_percent' '%.0f')"
    done
    echo
  fi

  if want rate; then
    echo "### Latency at a moderate rate: ${FANOUT_RATE[*]}"
    echo
    echo "| server | latency p50 ms | it ÷ chatserver (p50) | p99 ms | it ÷ chatserver (p99) | max ms | deliveries/s |"
    echo "|---|---|---|---|---|---|---|"
    b50=$(median rate chatserver "$RUNS" '.fanout.latency_ms.p50')
    b99=$(median rate chatserver "$RUNS" '.fanout.latency_ms.p99')
    for s in "${SERVERS[@]}"; do
      m50=$(median rate "$s" "$RUNS" '.fanout.latency_ms.p50')
      m99=$(median rate "$s" "$RUNS" '.fanout.latency_ms.p99')
      row "$(label_of "$s")" \
        "$(cell "$(figure rate "$s" "$RUNS" '.fanout.latency_ms.p50' '%.2f')" "$(failures rate "$s" "$RUNS" fanout)")" \
        "$(vs "$s" "$m50" "$b50")" \
        "$(figure rate "$s" "$RUNS" '.fanout.latency_ms.p99' '%.2f')" \
        "$(vs "$s" "$m99" "$b99")" \
        "$(figure rate "$s" "$RUNS" '.fanout.latency_ms.max' '%.1f')" \
        "$(figure rate "$s" "$RUNS" '.fanout.deliveries_per_second' '%.0f')"
    done
    echo
  fi

  if want join; then
    echo "### Join storm: ${JOIN[*]}"
    echo
    echo "All clients connect and join at once. \"In the room\" is the time to the last join; \"chatter over\""
    echo "is when every member has read the announcement of every later one. Then a few members send one"
    echo "message each, and every client that connected should get them."
    echo
    echo "| server | in the room | last join ms | chatter over ms | it ÷ chatserver (chatter) | refused | dropped | messages after |"
    echo "|---|---|---|---|---|---|---|---|"
    base=$(median join chatserver "$RUNS" '.join.chatter_end_ms')
    for s in "${SERVERS[@]}"; do
      m=$(median join "$s" "$RUNS" '.join.chatter_end_ms')
      row "$(label_of "$s")" \
        "$(cell "$(figure join "$s" "$RUNS" '.join.joined' '%.0f')" "$(failures join "$s" "$RUNS" join)")" \
        "$(figure join "$s" "$RUNS" '.join.last_join_ms' '%.0f')" \
        "$(figure join "$s" "$RUNS" '.join.chatter_end_ms' '%.0f')" \
        "$(vs "$s" "$m" "$base")" \
        "$(figure join "$s" "$RUNS" '.join.refused' '%.0f')" \
        "$(figure join "$s" "$RUNS" '.join.dropped' '%.0f')" \
        "$(figure join "$s" "$RUNS" '.join.check.delivered' '%.0f') of $(figure join "$s" "$RUNS" '.join.check.expected' '%.0f')"
    done
    echo
  fi

  if want scale; then
    echo "### Scale: ${SCALE[*]}"
    echo
    echo "Connect and join (500 at a time), chat at 10 messages/s for 10 s, 10 s idle, then one message to all."
    echo "Memory and threads from /proc/<pid>; the sweep times from chatserver's STATS over the idle phase"
    echo "(wall time includes the probe's 1 ms wait; CPU is the poller thread's own)."
    echo
    echo "| server | in the room | join ms | RSS MiB | threads | idle CPU % | sweep p99 ms (CPU p99) | one message to all, ms | it ÷ chatserver (round) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    base=$(median scale chatserver "$SCALE_RUNS" '.scale.round.ms_to_last')
    for s in chatserver epoll "${PEERS_ONLY[@]}"; do
      m=$(median scale "$s" "$SCALE_RUNS" '.scale.round.ms_to_last')
      row "$(label_of "$s")" \
        "$(cell "$(figure scale "$s" "$SCALE_RUNS" '.scale.joined' '%.0f')" "$(failures scale "$s" "$SCALE_RUNS" scale)")" \
        "$(figure scale "$s" "$SCALE_RUNS" '.scale.last_join_ms' '%.0f')" \
        "$(figure scale "$s" "$SCALE_RUNS" '.scale.at_end.rss_mib' '%.0f')" \
        "$(figure scale "$s" "$SCALE_RUNS" '.scale.at_end.threads' '%.0f')" \
        "$(figure scale "$s" "$SCALE_RUNS" '.scale.idle_cpu_percent' '%.1f')" \
        "$(figure scale "$s" "$SCALE_RUNS" '.scale.idle_sweep_p99_us / 1000' '%.1f') ($(figure scale "$s" "$SCALE_RUNS" '.scale.idle_sweep_cpu_p99_us / 1000' '%.1f'))" \
        "$(figure scale "$s" "$SCALE_RUNS" '.scale.round.ms_to_last' '%.0f')" \
        "$(vs "$s" "$m" "$base")"
    done
    echo
  fi

  if want slow; then
    echo "### A client that stops reading: detect --case \"not reading\""
    echo
    echo "A client with a 4 KiB receive buffer joins and never reads; another member, the observer, sends up to"
    echo "1,000 lines of 900 B (reading its own echoes), on a server with \`--send-queue 256KiB --send-timeout 2s\`."
    echo "The time runs from the observer's first line to its reading the client's LEAVE. The peers are not in"
    echo "this table: chatbench's detect mode needs chatserver's LEAVE causes."
    echo
    echo "| server | runs | cause seen | time to LEAVE ms | the observer had sent until then, KiB (median) | the LEAVE's detail (first run) |"
    echo "|---|---|---|---|---|---|"
    # The causes seen, as chatbench's own table shows them: "too-slow", or "too-slow x2, no-pong x1".
    SLOW_CAUSES="$SLOW_ROW.causes | group_by(.) | if length > 1 then map(\"\\(.[0]) x\\(length)\") else map(.[0]) end | join(\", \")"
    for s in "${DETECT_SERVERS[@]}"; do
      kib=$(median slow "$s" 1 "$SLOW_ROW.sent_mib[] * 1024")
      row "$(label_of "$s")" \
        "$(figure slow "$s" 1 "$SLOW_ROW | (.ms | length) + (.errors | length)" '%.0f')" \
        "$(cell "$(text_of slow "$s" "$SLOW_CAUSES")" \
          "$(failures slow "$s" 1 detect)")" \
        "$(figure slow "$s" 1 "$SLOW_ROW.ms[]" '%.1f')" \
        "$(awk -v m="$kib" 'BEGIN { if (m == "") print "-"; else printf "%.0f", m }')" \
        "$(text_of slow "$s" "$SLOW_ROW.details[0]")"
    done
    echo
  fi

  echo "The commands (each run starts the server afresh; peers through bench/peers.sh):"
  echo
  echo '```'
  printf '%s\n' "${COMMANDS[@]}"
  echo '```'
  if [ -n "$PROFILES" ]; then
    echo
    echo "### Profiles (perf record -a -g, while compare.sh ran these)"
    echo
    echo "$PROFILES"
  fi
  echo
  echo "<!-- compare.sh:end -->"
} >"$page"

# Replace what is between the markers in OUT (or create OUT with just the measured part).
if [ -f "$OUT" ] && grep -q '<!-- compare.sh:begin' "$OUT"; then
  awk -v gen="$page" '
    /<!-- compare.sh:begin/ { while ((getline line < gen) > 0) print line; skip = 1; next }
    /<!-- compare.sh:end -->/ { skip = 0; next }
    !skip { print }' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
else
  mkdir -p "$(dirname "$OUT")"
  cp "$page" "$OUT"
fi
rm -f "$page"
log "wrote $OUT (raw results in $WORK/)"
