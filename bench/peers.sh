#!/usr/bin/env bash
# bench/peers.sh: the other chat servers chatserver is compared with, started on 127.0.0.1 only.
#
#   ncat      `ncat --chat` (Debian package ncat)             chatbench --protocol line
#   ngircd    ngIRCd 26, channel #chat (Debian package ngircd) chatbench --protocol irc
#   asio      Asio's cpp11 chat_server example, compiled from
#             /usr/share/doc/libasio-dev/examples (libasio-doc) into build/peers/asio-chat/
#                                                              chatbench --protocol asio
#
# By hand (from the repository root):
#
#   bench/peers.sh install              apt-get what is missing (sudo when not root)
#   bench/peers.sh build                compile the Asio example if it is not built yet
#   bench/peers.sh start ngircd         install/build if needed, start, print "PID PORT"
#   bench/peers.sh stop PID             SIGTERM, then SIGKILL after 5 s, by pid only
#
# As a library (bench/compare.sh):
#
#   source bench/peers.sh
#   peers_install && peers_build_asio
#   peers_start ngircd >/dev/null     # sets PEERS_PID and PEERS_PORT (and prints "PID PORT")
#   ...; peers_stop "$PEERS_PID"
#
# Called like that (not in $(...)), the peer is a child of the calling shell, which can `wait`
# for it; peers_stop reaps it.
#
# Every peer listens on 127.0.0.1 only, except the Asio example: it binds
# tcp::endpoint(tcp::v4(), port), i.e. 0.0.0.0, and takes no address argument; we may not modify
# it, so it listens on every interface for as long as a run lasts.
#
# A peer runs with its soft `ulimit -n` raised to the hard limit (10,000+ clients need it), its
# stdin on /dev/null and its output in build/peers/<name>.log. It is a background child: when the
# caller is interrupted it keeps running, so callers stop what they started (trap ... EXIT).
# Nothing here kills by name.
#
# Environment: PEERS_DIR (default build/peers), PEERS_START_TIMEOUT (seconds, default 10).

PEERS_REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$PEERS_REPO/build/peers}
PEERS_START_TIMEOUT=${PEERS_START_TIMEOUT:-10}
PEERS_PACKAGES=(ncat ngircd libasio-doc libasio-dev g++ iproute2)
PEERS_ASIO_EXAMPLE=/usr/share/doc/libasio-dev/examples/cpp11/chat
# Ports are picked below the kernel's ephemeral range (32768-60999 by default), so that the
# benchmark's own client sockets can never hold the port a peer is about to bind.
PEERS_PORT_MIN=20000
PEERS_PORT_MAX=32767

peers_log() { echo "peers.sh: $*" >&2; }

# peers_alive PID: true while PID exists and is not a zombie (a zombie still answers kill -0).
# Reads /proc without forking: stop may run while a busy peer has the CPUs.
peers_alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# peers_now_ms: milliseconds on a clock that never forks, in PEERS_NOW_MS.
peers_now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  PEERS_NOW_MS=$((t / 1000))
}

# peers_wait_gone PID MS: wait up to MS milliseconds for PID to exit; true when it has.
peers_wait_gone() {
  local pid=$1 deadline
  peers_now_ms
  deadline=$((PEERS_NOW_MS + $2))
  while peers_alive "$pid"; do
    peers_now_ms
    [ "$PEERS_NOW_MS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# peers_install: apt-get install whatever of PEERS_PACKAGES is missing.
peers_install() {
  local missing=() p
  for p in "${PEERS_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  peers_log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" || return 1
  # Debian starts the ngircd service on installation where systemd runs. We never use it (it
  # listens on 0.0.0.0:6667), and we installed it only to start our own: stop and disable it.
  if [[ " ${missing[*]} " == *" ngircd "* ]] && command -v systemctl >/dev/null &&
    systemctl is-enabled --quiet ngircd 2>/dev/null; then
    peers_log "disabling the ngircd system service the package started (bench/peers.sh runs its own)"
    "${sudo[@]}" systemctl disable --now ngircd >/dev/null 2>&1 || true
  fi
}

# peers_build_asio: build/peers/asio-chat/chat_server from the example's sources, once.
# libasio-doc ships chat_server.cpp plain or gzipped (next to a gzipped prebuilt binary,
# chat_server.gz, which we do not use); either way the sources go to build/peers/asio-chat/src.
peers_build_asio() {
  local dir=$PEERS_DIR/asio-chat
  [ -x "$dir/chat_server" ] && return 0
  mkdir -p "$dir/src" || return 1
  local f
  for f in chat_server.cpp chat_message.hpp; do
    if [ -f "$PEERS_ASIO_EXAMPLE/$f" ]; then
      cp "$PEERS_ASIO_EXAMPLE/$f" "$dir/src/$f"
    elif [ -f "$PEERS_ASIO_EXAMPLE/$f.gz" ]; then
      gzip -dc "$PEERS_ASIO_EXAMPLE/$f.gz" >"$dir/src/$f"
    else
      peers_log "$PEERS_ASIO_EXAMPLE/$f not found (is libasio-doc installed?)"
      return 1
    fi || return 1
  done
  peers_log "compiling $dir/chat_server"
  # Written to a temporary name first, so an interrupted build is not taken for a finished one.
  g++ -O2 -std=c++20 -DASIO_STANDALONE -pthread -I"$dir/src" \
    -o "$dir/chat_server.tmp" "$dir/src/chat_server.cpp" &&
    mv "$dir/chat_server.tmp" "$dir/chat_server"
}

# peers_free_port: print a TCP port in PEERS_PORT_MIN..MAX that no socket uses (in any state).
# Another process can still take it before the peer binds; peers_start retries then.
peers_free_port() {
  local used port i
  used=" $(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }' | sort -un | tr '\n' ' ') "
  for ((i = 0; i < 200; i++)); do
    port=$((PEERS_PORT_MIN + (RANDOM * 32768 + RANDOM) % (PEERS_PORT_MAX - PEERS_PORT_MIN + 1)))
    [[ $used == *" $port "* ]] || { echo "$port"; return 0; }
  done
  peers_log "no free port found in $PEERS_PORT_MIN-$PEERS_PORT_MAX"
  return 1
}

# peers_wait_listening PID PORT: wait until process PID listens on PORT (what ss reports for the
# socket's owner), at most PEERS_START_TIMEOUT seconds. Fails at once if PID has exited.
# Polls the listening table rather than connecting, so no peer ever sees a probe client.
peers_wait_listening() {
  local pid=$1 port=$2
  local deadline
  peers_now_ms
  deadline=$((PEERS_NOW_MS + PEERS_START_TIMEOUT * 1000))
  while :; do
    peers_alive "$pid" || return 1
    ss -Hltnp "sport = :$port" 2>/dev/null | grep -q "pid=$pid," && return 0
    peers_now_ms
    [ "$PEERS_NOW_MS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# peers_ngircd_config PORT: write build/peers/ngircd/ngircd.conf (for that port), print its path.
# Every limit that throttles or drops a busy client or a big server is lifted as far as ngIRCd 26
# lets a configuration lift it (`man ngircd.conf`); MaxPenaltyTime = 0 matters most: with the
# default (-1) a client sending faster than 3 commands per main-loop turn is paused a second at a
# time, i.e. ~3 messages/s. What no setting lifts (compiled in): a client whose pending output
# reaches 32 KiB (beyond what its socket buffers hold) is dropped ("Write buffer space
# exhausted"), a line longer than 512 bytes with CR LF drops its sender ("Request too long"), the
# listen backlog is 10. docs/performance.md has what these do under load.
peers_ngircd_config() {
  local port=$1 dir=$PEERS_DIR/ngircd
  mkdir -p "$dir/conf.d" || return 1
  : >"$dir/ngircd.motd"
  # No ServerUID/ServerGID: started as root, ngIRCd 26 will not keep root and switches to
  # "nobody" by itself; started as anyone else, it logs that it cannot switch and runs on as that
  # user. Nothing it opens after the switch needs permissions (no PidFile; the MOTD is read at
  # start). An empty MOTD file gives the short "422 MOTD file is missing" instead of a MOTD.
  cat >"$dir/ngircd.conf" <<EOF
# Written by bench/peers.sh for one benchmark run; rewritten on each start.
[Global]
	Name = ngircd.bench
	Info = chatserver benchmark peer
	AdminInfo1 = chatserver benchmark
	AdminInfo2 = 127.0.0.1
	AdminEMail = nobody@localhost
	Listen = 127.0.0.1
	Ports = $port
	MotdFile = $dir/ngircd.motd

[Limits]
	IdleTimeout = 0
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 31
	MaxPenaltyTime = 0
	PingTimeout = 3600
	PongTimeout = 600

[Options]
	AllowedChannelTypes = #&+
	# The default, /etc/ngircd/ngircd.conf.d, would add the machine's settings to ours.
	IncludeDir = $dir/conf.d
	DNS = no
	Ident = no
	PAM = no
	NoticeBeforeRegistration = no
	RequireAuthPing = no

[Channel]
	Name = #chat
	Topic = chatserver benchmark
	Modes = +P
EOF
  echo "$dir/ngircd.conf"
}

# peers_launch NAME PORT: start NAME in the background on 127.0.0.1:PORT; sets PEERS_PID.
peers_launch() {
  local name=$1 port=$2 log=$PEERS_DIR/$1.log cmd
  case "$name" in
    ncat)
      # --chat implies --broker and --keep-open. --max-conns: the default is 100. Whatever the
      # limit, ncat uses select() and exits when a client's socket would be fd 1024.
      cmd=(ncat -4 --nodns --chat --max-conns 100000 --listen 127.0.0.1 "$port")
      ;;
    ngircd)
      local conf
      conf=$(peers_ngircd_config "$port") || return 1
      cmd=(ngircd --nodaemon --passive --config "$conf")
      ;;
    asio)
      peers_build_asio || return 1
      # Binds 0.0.0.0:PORT: see the top of this file.
      cmd=("$PEERS_DIR/asio-chat/chat_server" "$port")
      ;;
    *)
      peers_log "unknown peer '$name' (ncat, ngircd or asio)"
      return 2
      ;;
  esac
  mkdir -p "$PEERS_DIR" || return 1
  echo "== $(date '+%F %T') ${cmd[*]}" >>"$log"
  # The subshell raises its soft fd limit to the hard one (an "unlimited" hard limit means the
  # kernel's nr_open), then becomes the peer: $! is its pid.
  (
    hard=$(ulimit -Hn)
    [ "$hard" != unlimited ] || hard=$(cat /proc/sys/fs/nr_open)
    ulimit -n "$hard" 2>/dev/null || peers_log "could not raise ulimit -n to $hard for $name"
    exec "${cmd[@]}"
  ) </dev/null >>"$log" 2>&1 &
  PEERS_PID=$!
}

# peers_start NAME: start NAME (ncat, ngircd, asio) on 127.0.0.1 and a free port, wait until it
# listens, set PEERS_PID and PEERS_PORT and print "PID PORT". Retries with another port (5 tries)
# when the start fails.
peers_start() {
  local name=$1 try port pid
  for ((try = 0; try < 5; try++)); do
    port=$(peers_free_port) || return 1
    peers_launch "$name" "$port" || return 1
    pid=$PEERS_PID
    if peers_wait_listening "$pid" "$port"; then
      # shellcheck disable=SC2034 # for the caller that sources this file
      PEERS_PORT=$port
      echo "$pid $port"
      return 0
    fi
    peers_log "$name (pid $pid) is not listening on $port; see $PEERS_DIR/$name.log"
    peers_stop "$pid" || true
  done
  return 1
}

# peers_stop PID: SIGTERM, wait up to 5 s, then SIGKILL and wait up to 5 s more; by pid only.
# Reaps PID when it is a child of this shell. Fails only when PID is still there at the end.
peers_stop() {
  local pid=$1
  [[ $pid =~ ^[0-9]+$ ]] || { peers_log "stop: '$pid' is not a pid"; return 2; }
  if peers_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! peers_wait_gone "$pid" 5000; then
      peers_log "pid $pid did not exit within 5 s of SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      peers_wait_gone "$pid" 5000 || { peers_log "pid $pid is still there after SIGKILL"; return 1; }
    fi
  fi
  # Gone or a zombie: if it is our child, collect it (otherwise wait fails at once).
  wait "$pid" 2>/dev/null || true
  return 0
}

peers_main() {
  set -euo pipefail
  local verb=${1:-}
  [ $# -gt 0 ] && shift
  case "$verb" in
    install) peers_install ;;
    build) peers_install && peers_build_asio ;;
    start)
      [ $# -eq 1 ] || { echo "usage: bench/peers.sh start ncat|ngircd|asio" >&2; return 2; }
      peers_install
      [ "$1" != asio ] || peers_build_asio
      peers_start "$1"
      ;;
    stop)
      [ $# -ge 1 ] || { echo "usage: bench/peers.sh stop PID..." >&2; return 2; }
      local pid
      for pid in "$@"; do peers_stop "$pid"; done
      ;;
    *)
      echo "usage: bench/peers.sh install | build | start ncat|ngircd|asio | stop PID..." >&2
      return 2
      ;;
  esac
}

# Run as a command only when executed, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  peers_main "$@"
fi
