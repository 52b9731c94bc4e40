#!/usr/bin/env bash
# The project's entry point on a fresh Debian 12 machine.
#
#   ./chat.sh run [chatserver options]   install what is missing, build chatserver if a source
#                                        changed (build/run), run it
#   ./chat.sh test                       install what is missing, build, run every test suite
#                                        (plain, ThreadSanitizer, AddressSanitizer + UBSan),
#                                        then fuzz for about a minute (libFuzzer, build/fuzz)
#   ./chat.sh build                      install what is missing and build (build/release)
#   ./chat.sh deb                        install what is missing, build, and make the Debian
#                                        package build/release/chat_VERSION_ARCH.deb
#
# Environment: CHAT_TEST_SANITIZERS=0 skips the two sanitizer builds in `test`;
# CHAT_TEST_FUZZ=0 skips the fuzz build in `test` (and installing clang for it);
# CHAT_JOBS=N sets build parallelism (default: number of cores).
#
# `run` has a build folder of its own, build/run (CHAT_RUN_DIR=DIR for another one, relative to
# this folder or absolute), configured once with the tests off, so it never reconfigures the
# folders of `build` and `test` (build/release) nor waits for CMake: it builds (only the chatserver
# target, incrementally) when the binary is missing or a file it is built from (server/, common/,
# web/ -- the page is embedded at build time --, a CMakeLists.txt or *.cmake outside tests/ and
# docs/) is newer than the last build, and otherwise execs chatserver at once (exec: SIGINT and
# SIGTERM reach it directly; every argument is passed on). CHAT_RUN_DRY=1 ./chat.sh run only says
# whether it would build, and why (it installs, builds and runs nothing).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

PACKAGES=(g++ make cmake libasio-dev catch2 libcli11-dev libncurses-dev libssl-dev libsqlite3-dev libhiredis-dev iproute2 tmux netcat-openbsd procps)
# The .deb: man pages from --help (help2man), dependencies from dpkg-shlibdeps (dpkg-dev, file).
DEB_PACKAGES=(help2man dpkg-dev file)
# The test suite also runs bench/compare.sh --quick: the servers chatserver is compared with;
# and it builds the .deb and checks its unit (systemd-analyze) and logrotate snippet.
# and chatclient-qt, the desktop client (Qt 6 Widgets; its tests use the offscreen platform).
# and the web side: Python's websockets (a WebSocket client nobody here wrote), and headless
# Chromium driven by Selenium (Debian's /usr/bin/python3 and its modules).
# and the backplane's tests: a real redis-server, started by the tests on a private socket, and
# HAProxy in front of several chatservers (the shipped example, packaging/haproxy-chat.cfg).
# and TLS: the openssl command (s_client and s_server, test certificates) and testssl.sh, which
# rates the server's TLS.
TEST_PACKAGES=(ncat ngircd libasio-doc jq "${DEB_PACKAGES[@]}" logrotate systemd qt6-base-dev
  python3 python3-websockets chromium chromium-driver python3-selenium redis-server haproxy openssl testssl.sh)
# The fuzz targets (tests/fuzz): clang and its compiler-rt (libFuzzer, ASan and UBSan runtimes;
# on Debian 12 libclang-rt-dev is libclang-rt-14-dev, which --no-install-recommends leaves out).
FUZZ_PACKAGES=(clang libclang-rt-dev)
JOBS=${CHAT_JOBS:-$(nproc)}

# install_missing [EXTRA PACKAGES...]
install_missing() {
  local wanted=("${PACKAGES[@]}" "$@") missing=() installed=" " line p
  # One dpkg-query for all of them (a name it does not know is reported on stderr: missing).
  while IFS= read -r line; do
    [[ $line == *" install ok installed" ]] && installed+="${line%% *} "
  done < <(dpkg-query -W -f='${Package} ${Status}\n' "${wanted[@]}" 2>/dev/null || true)
  for p in "${wanted[@]}"; do
    [[ $installed == *" $p "* ]] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "chat.sh: installing ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's ngircd package starts a system service (0.0.0.0:6667) where systemd runs; the tests
  # start their own ngircd on 127.0.0.1 (bench/peers.sh), so the service is stopped and disabled.
  if [[ " ${missing[*]} " == *" ngircd "* ]] && command -v systemctl >/dev/null &&
    systemctl is-enabled --quiet ngircd 2>/dev/null; then
    echo "chat.sh: disabling the ngircd system service (the tests run their own)" >&2
    "${sudo[@]}" systemctl disable --now ngircd >/dev/null 2>&1 || true
  fi
}

# build DIR [cmake args...]
build() {
  local dir=$1 start=$SECONDS
  shift
  cmake -S . -B "build/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "build/$dir" -j "$JOBS"
  echo "== built build/$dir in $((SECONDS - start)) s =="
}

# run_suite DIR LABEL [CTEST ARGS...]: every test, with output for the failures only, two at a
# time (CHAT_TEST_JOBS=N for another number; the RUN_SERIAL ones always alone).
run_suite() {
  local start=$SECONDS status=0
  echo "== $2 =="
  (cd "build/$1" && ctest --output-on-failure --timeout 600 -j "${CHAT_TEST_JOBS:-2}" "${@:3}") || status=$?
  echo "== $2: $((SECONDS - start)) s =="
  return $status
}

# run_stale DIR: why DIR's chatserver must be built (one line), or nothing when it is up to date.
# Up to date: the binary is there and no source is newer than DIR/.chat-run-stamp (touched when
# chat.sh run's last successful build started) or, without a stamp (a folder built otherwise, e.g.
# CHAT_RUN_DIR=build/release), than the binary. One find, no CMake.
run_stale() {
  local dir=$1 bin=$1/server/chatserver ref roots=(CMakeLists.txt) d newer
  [ -x "$bin" ] || { echo "no $bin yet"; return 0; }
  ref=$bin
  [ -f "$dir/.chat-run-stamp" ] && ref=$dir/.chat-run-stamp
  # Every top-level folder but build folders, tests/ (off in build/run) and docs/.
  for d in */; do
    d=${d%/}
    case $d in build | build-* | tests | docs) continue ;; esac
    [ -e "$d/CMakeCache.txt" ] && continue
    roots+=("$d")
  done
  newer=$(find "${roots[@]}" -type f \( -path 'server/*' -o -path 'common/*' -o -path 'web/*' \
    -o -name CMakeLists.txt -o -name '*.cmake' \) -newer "$ref" -print -quit)
  [ -z "$newer" ] || echo "$newer changed"
}

# run_build DIR REASON: configure DIR once (tests, chatbench and Qt off), then build the chatserver
# target, saying so on stderr with CMake's progress lines; errors in full, and exit 1, on failure.
run_build() {
  local dir=$1 reason=$2 start=$SECONDS out
  mkdir -p "$dir"
  # One build at a time in DIR (two `run`s at once); closed before chatserver is exec'd.
  exec 9>"$dir/.chat-run.lock"
  if ! flock -n 9; then
    echo "chat.sh: waiting for another chat.sh building in $dir ..." >&2
    flock 9
    reason=$(run_stale "$dir")
  fi
  if [ -n "$reason" ]; then
    if [ -x "$dir/server/chatserver" ]; then
      echo "chat.sh: $reason: building chatserver in $dir ..." >&2
    else
      echo "chat.sh: building chatserver in $dir (the first time takes a few minutes) ..." >&2
    fi
    if ! [ -f "$dir/CMakeCache.txt" ] || ! { [ -f "$dir/Makefile" ] || [ -f "$dir/build.ninja" ]; }; then
      echo "chat.sh: configuring $dir (tests off) ..." >&2
      if ! out=$(cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAT_BUILD_TESTS=OFF \
        -DCHAT_BUILD_BENCH=OFF -DCHAT_WITH_QT=OFF 2>&1); then
        printf '%s\n' "$out" >&2
        echo "chat.sh: configuring $dir failed (CMake's output above)" >&2
        exit 1
      fi
    fi
    touch "$dir/.chat-run-stamp.next"
    if ! cmake --build "$dir" -j "$JOBS" --target chatserver >&2; then
      echo "chat.sh: building chatserver in $dir failed (the errors above)" >&2
      exit 1
    fi
    mv -f "$dir/.chat-run-stamp.next" "$dir/.chat-run-stamp"
    echo "chat.sh: chatserver built in $((SECONDS - start)) s; starting $dir/server/chatserver" >&2
  fi
  exec 9>&-
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  run)
    dir=${CHAT_RUN_DIR:-build/run}
    dir=${dir%/}
    if [ "${CHAT_RUN_DRY:-0}" != 0 ]; then
      reason=$(run_stale "$dir")
      if [ -n "$reason" ]; then
        echo "chat.sh: would build chatserver in $dir ($reason)"
      else
        echo "chat.sh: chatserver in $dir is up to date; would run $dir/server/chatserver"
      fi
      exit 0
    fi
    install_missing
    reason=$(run_stale "$dir")
    [ -z "$reason" ] || run_build "$dir" "$reason"
    exec "$dir/server/chatserver" "$@"
    ;;
  build)
    install_missing
    build release -DCHAT_BUILD_TESTS=ON
    ;;
  deb)
    install_missing "${DEB_PACKAGES[@]}"
    build release -DCHAT_BUILD_TESTS=ON
    (cd build/release && cpack -G DEB)
    ;;
  test)
    fuzz=${CHAT_TEST_FUZZ:-1}
    if [ "$fuzz" != 0 ]; then
      install_missing "${TEST_PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
    else
      install_missing "${TEST_PACKAGES[@]}"
    fi
    build release -DCHAT_BUILD_TESTS=ON
    run_suite release "tests"
    if [ "${CHAT_TEST_SANITIZERS:-1}" != 0 ]; then
      # Not chatclient-qt: Qt's own libraries are not built with the sanitizers (the release
      # build runs its tests).
      build tsan -DCHAT_SANITIZE=thread -DCHAT_BUILD_BENCH=OFF -DCHAT_WITH_QT=OFF
      # Three at a time: under the sanitizers the tests wait on their (slower) servers more than
      # they use a core (TSan's suite: 141 s at -j3 where it took 171 s at -j2).
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" CHAT_TEST_JOBS=${CHAT_TEST_JOBS:-3} \
        run_suite tsan "tests under ThreadSanitizer"
      build asan -DCHAT_SANITIZE=address -DCHAT_BUILD_BENCH=OFF -DCHAT_WITH_QT=OFF
      ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" CHAT_TEST_JOBS=${CHAT_TEST_JOBS:-3} \
        run_suite asan "tests under AddressSanitizer + UBSan"
    fi
    # Each fuzz target runs CHAT_FUZZ_SECONDS (12 s) from its seeds; any crash, leak, timeout or
    # sanitizer report fails it (tests/fuzz/CMakeLists.txt).
    if [ "$fuzz" = 0 ]; then
      echo "== fuzzing (libFuzzer): skipped (CHAT_TEST_FUZZ=0) =="
    elif ! command -v clang++ >/dev/null; then
      echo "== fuzzing (libFuzzer): skipped, clang++ not found (apt-get install ${FUZZ_PACKAGES[*]}) =="
    else
      build fuzz -DCMAKE_CXX_COMPILER=clang++ -DCHAT_FUZZ=ON
      run_suite fuzz "fuzzing (libFuzzer)" -L fuzz
    fi
    ;;
  *)
    echo "usage: ./chat.sh run [chatserver options] | ./chat.sh test | ./chat.sh build | ./chat.sh deb" >&2
    exit 2
    ;;
esac
