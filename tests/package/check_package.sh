#!/usr/bin/env bash
# The chat package and what it installs, checked as an admin would meet them (issue 11).
#
#   check_package.sh deb       BUILD   cpack -G DEB; dpkg-deb -I / -c (programs, unit, conffiles,
#                                      man pages, dependencies); unpacked into a temporary root
#                                      (dpkg-deb -x), its chatserver runs with its config file
#                                      and a client joins
#   check_package.sh unit      BUILD   cmake --install --prefix TMP; systemd-analyze verify and
#                                      security on the unit (skipped where systemd-analyze is missing)
#   check_package.sh logrotate BUILD   the shipped logrotate snippet, pointed at a temporary
#                                      folder, rotates a running chatserver's transcript:
#                                      nothing lost, the new lines in the new file
#
# Everything happens in a temporary folder that is removed at the end; the chatserver started
# here runs on 127.0.0.1 port 0 and is ended by its pid.
set -euo pipefail
mode=$1
build=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/chat-package-XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, fails with DESCRIPTION if it fails
  local what=$1
  shift
  "$@" || fail "$what"
  echo "ok: $what"
}
contains() { grep -q -- "$2" <<<"$1"; }

# start_server BINARY ARGS...: starts chatserver on 127.0.0.1 port 0 (stderr to $work/server.err)
# and sets server_pid and port once it says where it listens.
start_server() {
  "$@" --bind 127.0.0.1 --port 0 2>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 100); do
    port=$(sed -n 's/^chatserver listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.err")
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/server.err" >&2
  fail "chatserver did not start: $*"
}

# say NICK LINE...: joins as NICK, sends each LINE, waits until the last comes back (bounded),
# then quits. Bash's /dev/tcp: no client of ours involved.
say() {
  local nick=$1 line got=
  shift
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'HELLO %s\n' "$nick" >&3
  for line in "$@"; do printf 'SAY %s\n' "$line" >&3; done
  local last=${*: -1}
  while IFS= read -r -t 10 got <&3; do
    [[ $got == *"$last"* ]] && break
  done
  [[ $got == *"$last"* ]] || fail "$nick's line '$last' did not come back (last: $got)"
  printf 'QUIT\n' >&3
  exec 3>&-
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || fail "chatserver exited $? after SIGTERM"
  server_pid=
}

case "$mode" in
  deb)
    (cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack -G DEB"; }
    deb=$(ls "$work"/out/chat_*.deb)
    echo "built $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"
    info=$(dpkg-deb -I "$deb")
    files=$(dpkg-deb -c "$deb")
    depends=$(dpkg-deb -f "$deb" Depends)
    echo "Depends: $depends"
    # dpkg-shlibdeps computed these from the programs' libraries (nobody typed them).
    for lib in libc6 libstdc++6 libgcc-s1 libncursesw6; do check "depends on $lib" contains "$depends" "$lib ("; done
    check "depends on init-system-helpers (postinst calls deb-systemd-helper)" contains "$depends" init-system-helpers
    for path in ./usr/bin/chatserver ./usr/bin/chatclient ./usr/bin/chatlab ./lib/systemd/system/chatserver.service \
      ./etc/chat/chatserver.conf ./etc/logrotate.d/chatserver ./usr/share/man/man1/chatserver.1.gz \
      ./usr/share/man/man1/chatclient.1.gz ./usr/share/doc/chat/README.md ./usr/share/doc/chat/docs/protocol.md \
      ./lib/systemd/system/chatserver@.service ./usr/share/doc/chat/examples/haproxy-chat.cfg; do
      check "the package holds $path" contains "$files" " $path\$"
    done
    check "nothing lands under /usr/local or /usr/etc" bash -c '! grep -qE " \./usr/(local|etc)/" <<<"$1"' _ "$files"
    mkdir "$work/control"
    dpkg-deb -e "$deb" "$work/control"
    check "the config file and the logrotate snippet are conffiles" \
      diff <(sort "$work/control/conffiles") <(printf '/etc/chat/chatserver.conf\n/etc/logrotate.d/chatserver\n')
    for script in postinst prerm postrm; do check "$script is a valid shell script" sh -n "$work/control/$script"; done
    check "dpkg-deb -I lists the maintainer scripts" contains "$info" postinst

    root=$work/root
    dpkg-deb -x "$deb" "$root"
    check "the unit starts /usr/bin/chatserver with /etc/chat/chatserver.conf" \
      grep -qx 'ExecStart=/usr/bin/chatserver --config /etc/chat/chatserver.conf' "$root/lib/systemd/system/chatserver.service"
    check "the template unit starts instance N with /etc/chat/chatserver-N.conf" \
      grep -qx 'ExecStart=/usr/bin/chatserver --config /etc/chat/chatserver-%i.conf' "$root/lib/systemd/system/chatserver@.service"
    conf=$root/etc/chat/chatserver.conf
    printed=$("$root/usr/bin/chatserver" --config "$conf" --print-config) || fail "--print-config with the shipped config"
    check "the shipped config sets the service's transcript" contains "$printed" 'log-file="/var/log/chat/chat.log"'
    check "the shipped config keeps the history in the service's StateDirectory" contains "$printed" 'db="/var/lib/chat/chat.db"'
    defaults=$("$root/usr/bin/chatserver" --print-config)
    check "every other setting in the shipped config is the default" \
      diff <(grep -v '^log-file=\|^db=' <<<"$printed") <(grep -v '^log-file=\|^db=' <<<"$defaults")
    check "every option is in the shipped config, commented out" \
      diff <(grep -oE '^[a-z-]+=' <<<"$defaults" | tr -d =) <(grep -oE '^(# )?[a-z-]+ = ' "$conf" | sed 's/^# //; s/ = $//')
    man=$(zcat "$root/usr/share/man/man1/chatserver.1.gz")
    check "chatserver(1) documents --keepalive and SIGHUP" bash -c 'grep -q "keepalive" <<<"$1" && grep -q "SIGHUP" <<<"$1"' _ "$man"
    check "chatclient(1) documents --reconnect" bash -c 'zcat "$1" | grep -q reconnect' _ "$root/usr/share/man/man1/chatclient.1.gz"

    # The unpacked chatserver, with the shipped config (the command line moves it to 127.0.0.1,
    # a free port, and a transcript and a database in the temporary folder).
    start_server "$root/usr/bin/chatserver" --config "$conf" --log-file "$work/chat.log" --db "$work/chat.db"
    say tester "hello from the package"
    stop_server
    check "the unpacked chatserver served a client (its transcript has the join and the line)" \
      bash -c 'grep -q "tester joined" "$1" && grep -q "hello from the package" "$1"' _ "$work/chat.log"
    ;;

  unit)
    cmake --install "$build" --prefix "$work/p" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
    unit=$work/p/lib/systemd/system/chatserver.service
    check "cmake --install --prefix P puts the unit under P" test -f "$unit"
    check "the installed unit runs P/bin/chatserver with P/etc/chat/chatserver.conf" \
      grep -qx "ExecStart=$work/p/bin/chatserver --config $work/p/etc/chat/chatserver.conf" "$unit"
    for setting in DynamicUser=yes StateDirectory=chat LogsDirectory=chat Restart=on-failure LimitNOFILE=65536 \
      ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes CapabilityBoundingSet= \
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service; do
      check "the unit sets $setting" grep -qx "$setting" "$unit"
    done
    if ! command -v systemd-analyze >/dev/null; then
      echo "SKIPPED: systemd-analyze is not installed (Debian package systemd)"
      exit 0
    fi
    # verify checks that ExecStart's program exists and runs `man` for Documentation=.
    verify=$(MANPATH=$work/p/share/man systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
    check "systemd-analyze verify says nothing" test -z "$verify"
    security=$(systemd-analyze security --offline=true "$unit" 2>&1) || fail "systemd-analyze security: $security"
    score=$(sed -n 's/.*Overall exposure level for chatserver.service: \([0-9.]*\) .*/\1/p' <<<"$security")
    echo "systemd-analyze security: exposure $score"
    check "the exposure level is at most 2.0 (OK; README states it)" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
    # The template (several chatservers on one host, docs/scale-out.md): verified as instance 1,
    # whose config must exist for ExecStart to be checked.
    template=$work/p/lib/systemd/system/chatserver@.service
    check "cmake --install --prefix P puts the template unit under P" test -f "$template"
    mkdir "$work/units"
    cp "$template" "$work/units/chatserver@1.service"
    cp "$work/p/etc/chat/chatserver.conf" "$work/p/etc/chat/chatserver-1.conf"
    verify=$(MANPATH=$work/p/share/man systemd-analyze verify "$work/units/chatserver@1.service" 2>&1) ||
      fail "systemd-analyze verify chatserver@1: $verify"
    check "systemd-analyze verify chatserver@1 says nothing" test -z "$verify"
    check "instance N keeps its history in its own StateDirectory" grep -qx 'StateDirectory=chat/%i' "$template"
    security=$(systemd-analyze security --offline=true "$work/units/chatserver@1.service" 2>&1) ||
      fail "systemd-analyze security chatserver@1: $security"
    score=$(sed -n 's/.*Overall exposure level for chatserver@1.service: \([0-9.]*\) .*/\1/p' <<<"$security")
    echo "systemd-analyze security chatserver@1: exposure $score"
    check "the template's exposure level is at most 2.0 too" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
    ;;

  logrotate)
    if ! command -v logrotate >/dev/null; then
      echo "SKIPPED: logrotate is not installed"
      exit 0
    fi
    cmake --install "$build" --prefix "$work/p" >/dev/null
    mkdir -m 700 "$work/logs"
    # The shipped snippet, pointed at the temporary folder; its postrotate signals our server by
    # pid instead of through systemctl.
    start_server "$work/p/bin/chatserver" --log-file "$work/logs/chat.log" --max-rate 0
    sed -e "s|/var/log/chat/|$work/logs/|" \
      -e "s|systemctl kill --kill-whom=main --signal=HUP chatserver.service|kill -HUP $server_pid|" \
      "$work/p/etc/logrotate.d/chatserver" >"$work/logrotate.conf"
    check "the snippet was pointed at the test's folder and server" grep -q "kill -HUP $server_pid" "$work/logrotate.conf"
    lines=()
    for i in $(seq 500); do lines+=("before-$i"); done
    say early "${lines[@]}"
    logrotate --force --state "$work/logrotate.state" "$work/logrotate.conf" || fail "logrotate"
    check "logrotate renamed the transcript (delaycompress: not compressed yet)" test -f "$work/logs/chat.log.1"
    # The reopen happens on the transcript thread, after the signal: wait for its word (bounded).
    for _ in $(seq 100); do grep -q "reopened the log file" "$work/server.err" && break; sleep 0.1; done
    check "chatserver reopened the transcript on SIGHUP" grep -q "reopened the log file" "$work/server.err"
    lines=()
    for i in $(seq 500); do lines+=("after-$i"); done
    say late "${lines[@]}"
    stop_server
    check "chatserver opened a new transcript after SIGHUP" grep -q "after-500" "$work/logs/chat.log"
    check "the renamed transcript holds every line from before" \
      diff <(grep -o 'before-[0-9]*' "$work/logs/chat.log.1") <(seq -f 'before-%g' 500)
    check "the new transcript holds every line from after, and none from before" \
      diff <(grep -o '[a-z]*-[0-9]*$' "$work/logs/chat.log" | grep -E '^(before|after)-') <(seq -f 'after-%g' 500)
    ;;

  *)
    echo "usage: $0 deb|unit|logrotate BUILD_DIR" >&2
    exit 2
    ;;
esac
echo "all checks passed"
