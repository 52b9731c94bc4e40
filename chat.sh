#!/usr/bin/env bash
# The project's entry point on a fresh Debian 12 machine.
#
#   ./chat.sh run [chatserver options]   install what is missing, build, run chatserver
#   ./chat.sh test                       install what is missing, build, run every test suite
#                                        (plain, ThreadSanitizer, AddressSanitizer + UBSan)
#   ./chat.sh build                      install what is missing and build (build/release)
#
# Environment: CHAT_TEST_SANITIZERS=0 skips the two sanitizer builds in `test`;
# CHAT_JOBS=N sets build parallelism (default: number of cores).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

PACKAGES=(g++ make cmake libasio-dev catch2 libcli11-dev libncurses-dev iproute2 tmux netcat-openbsd procps)
# The test suite also runs bench/compare.sh --quick: the servers chatserver is compared with.
TEST_PACKAGES=(ncat ngircd libasio-doc jq)
JOBS=${CHAT_JOBS:-$(nproc)}

# install_missing [EXTRA PACKAGES...]
install_missing() {
  local missing=() p
  for p in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
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
  local dir=$1
  shift
  cmake -S . -B "build/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "build/$dir" -j "$JOBS"
}

# run_suite DIR LABEL: every test, with output for the failures only.
run_suite() {
  echo "== $2 =="
  (cd "build/$1" && ctest --output-on-failure --timeout 600 -j 2)
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  run)
    install_missing
    build release -DCHAT_BUILD_TESTS=OFF
    exec build/release/server/chatserver "$@"
    ;;
  build)
    install_missing
    build release -DCHAT_BUILD_TESTS=ON
    ;;
  test)
    install_missing "${TEST_PACKAGES[@]}"
    build release -DCHAT_BUILD_TESTS=ON
    run_suite release "tests"
    if [ "${CHAT_TEST_SANITIZERS:-1}" != 0 ]; then
      build tsan -DCHAT_SANITIZE=thread -DCHAT_BUILD_BENCH=OFF
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_suite tsan "tests under ThreadSanitizer"
      build asan -DCHAT_SANITIZE=address -DCHAT_BUILD_BENCH=OFF
      ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" run_suite asan "tests under AddressSanitizer + UBSan"
    fi
    ;;
  *)
    echo "usage: ./chat.sh run [chatserver options] | ./chat.sh test | ./chat.sh build" >&2
    exit 2
    ;;
esac
