#!/usr/bin/env bash
# The project's entry point on a fresh Debian 12 machine.
#
#   ./chat.sh run [chatserver options]   install what is missing, build, run chatserver
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
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

PACKAGES=(g++ make cmake libasio-dev catch2 libcli11-dev libncurses-dev libssl-dev iproute2 tmux netcat-openbsd procps)
# The .deb: man pages from --help (help2man), dependencies from dpkg-shlibdeps (dpkg-dev, file).
DEB_PACKAGES=(help2man dpkg-dev file)
# The test suite also runs bench/compare.sh --quick: the servers chatserver is compared with;
# and it builds the .deb and checks its unit (systemd-analyze) and logrotate snippet.
# and chatclient-qt, the desktop client (Qt 6 Widgets; its tests use the offscreen platform).
# and the web side: Python's websockets (a WebSocket client nobody here wrote), and headless
# Chromium driven by Selenium (Debian's /usr/bin/python3 and its modules).
TEST_PACKAGES=(ncat ngircd libasio-doc jq "${DEB_PACKAGES[@]}" logrotate systemd qt6-base-dev
  python3 python3-websockets chromium chromium-driver python3-selenium)
# The fuzz targets (tests/fuzz): clang and its compiler-rt (libFuzzer, ASan and UBSan runtimes;
# on Debian 12 libclang-rt-dev is libclang-rt-14-dev, which --no-install-recommends leaves out).
FUZZ_PACKAGES=(clang libclang-rt-dev)
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

# run_suite DIR LABEL [CTEST ARGS...]: every test, with output for the failures only.
run_suite() {
  echo "== $2 =="
  (cd "build/$1" && ctest --output-on-failure --timeout 600 -j 2 "${@:3}")
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
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_suite tsan "tests under ThreadSanitizer"
      build asan -DCHAT_SANITIZE=address -DCHAT_BUILD_BENCH=OFF -DCHAT_WITH_QT=OFF
      ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" run_suite asan "tests under AddressSanitizer + UBSan"
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
