#!/usr/bin/env bash
# kqio_fileserver against nginx on the same directory, on loopback (issue 6).
#
#   bench/fileserver_vs_nginx.sh [--threads=N] [--duration=10s] [--quick]
#                                [--servers=kqio,nginx] [--no-mixed]
#                                [--cold-files=200] [--dir=DIR]
#
# 1. Throughput: wrk -t1 -c64 --latency against 4 KiB, 64 KiB and 1 MiB
#    files, kqio then nginx for each size; a table of requests/s, p99 and
#    the kqio/nginx ratios.  Target (threads=1): ratio >= 1.0 at 4 KiB and
#    64 KiB, p99 no worse.
# 2. Mixed: a wrk measures the hot 4 KiB file alone, then while a second
#    wrk pulls random 8 MiB files, first from the page cache ("cached", the
#    CPU-sharing baseline), then "cold": dropped with posix_fadvise before
#    the run and every 0.5 s during it.  The hot p99 with cold files shows
#    whether a loop ever blocks on the disk.  nginx runs its default
#    configuration here: no open_file_cache, no aio, no thread pools.
#    Target: kqio's hot p99 below nginx's.  A tmpfs temp dir is replaced by
#    /var/tmp (stat -f), and the disk's reads during the run are printed.
#
# Environment (flags win): THREADS (1), DURATION (10s), COLD_FILES (200),
# CONNECTIONS (64), HOT_CONNECTIONS (16), COLD_CONNECTIONS (8), FSBENCH_DIR
# (where the temp root goes; must be a real file system for the mixed part),
# KQIO_OUTPUT_BASE, KQIO_FILESERVER_BIN and FADVISE_BIN (skip the build),
# FSBENCH_KEEP=1 (keep the temp dir: wrk logs, nginx.conf).
#
# Installs nginx and wrk with apt-get when root (else prints the command),
# builds the server and bench/fadvise_dontneed.cc with -c opt in its own
# Bazel output base, listens on 127.0.0.1 only, and on exit stops every
# process it started and removes its temp directory.  Needs no python3.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

THREADS=${THREADS:-1}
DURATION=${DURATION:-10s}
COLD_FILES=${COLD_FILES:-200}
CONNECTIONS=${CONNECTIONS:-64}
HOT_CONNECTIONS=${HOT_CONNECTIONS:-16}
COLD_CONNECTIONS=${COLD_CONNECTIONS:-8}
BASE_DIR=${FSBENCH_DIR:-${TMPDIR:-/tmp}}
SERVERS="kqio,nginx"
MIXED=1
OUTPUT_BASE=${KQIO_OUTPUT_BASE:-$HOME/.cache/kqio-ob-fsbench}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case $1 in
    --threads=*) THREADS=${1#*=} ;;
    --threads) THREADS=$2; shift ;;
    --duration=*) DURATION=${1#*=} ;;
    --duration) DURATION=$2; shift ;;
    --quick) DURATION=2s ;;
    --servers=*) SERVERS=${1#*=} ;;
    --no-mixed) MIXED=0 ;;
    --cold-files=*) COLD_FILES=${1#*=} ;;
    --dir=*) BASE_DIR=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

case $THREADS in ''|*[!0-9]*|0) echo "--threads must be >= 1" >&2; exit 2 ;; esac
# wrk takes 10, 10s, 2m, 1h; the bound on each wrk needs whole seconds.
case $DURATION in
  *[0-9]s) SECS=${DURATION%s} ;;
  *[0-9]m) SECS=$(( ${DURATION%m} * 60 )) ;;
  *[0-9]h) SECS=$(( ${DURATION%h} * 3600 )) ;;
  *) SECS=$DURATION ;;
esac
case $SECS in ''|*[!0-9]*|0) echo "bad --duration: $DURATION" >&2; exit 2 ;; esac
DURATION=${SECS}s
want() { case ",$SERVERS," in *",$1,"*) return 0 ;; esac; return 1; }

# --- state the cleanup trap needs -------------------------------------------
WORK=""
PIDS=()             # process groups we started (servers, wrk, drop loop)
POLICY_RC_D=""      # a policy-rc.d we put in place for the install
cleanup() {
  set +e
  local pid
  for pid in "${PIDS[@]}"; do stop_group "$pid"; done
  [ -n "$POLICY_RC_D" ] && rm -f "$POLICY_RC_D"
  [ -n "$WORK" ] && [ -z "${FSBENCH_KEEP:-}" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops the process group led by $1 (TERM, then KILL after 10 s) and reaps it.
stop_group() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 0
}
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# --- tools -------------------------------------------------------------------
export PATH=$PATH:/usr/sbin:/sbin
missing=()
want nginx && ! command -v nginx >/dev/null 2>&1 && missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # The nginx package would start a system nginx on port 80; a
    # policy-rc.d that says no keeps it from starting.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      POLICY_RC_D=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
      chmod 755 "$POLICY_RC_D"
    fi
    apt_install() {
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "$@" >&2
    }
    apt_install "${missing[@]}" || { apt-get update -q >&2 && apt_install "${missing[@]}"; }
    if [ -n "$POLICY_RC_D" ]; then rm -f "$POLICY_RC_D"; POLICY_RC_D=""; fi
  else
    echo "missing tools; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# --- binaries ----------------------------------------------------------------
KQIO_BIN=${KQIO_FILESERVER_BIN:-}
FADVISE=${FADVISE_BIN:-}
targets=()
[ -z "$FADVISE" ] && targets+=(//bench:fadvise_dontneed)
want kqio && [ -z "$KQIO_BIN" ] && targets+=(//fileserver:kqio_fileserver)
if [ ${#targets[@]} -gt 0 ]; then
  # --symlink_prefix=/: no bazel-* links, so other builds in the tree keep
  # theirs.  The Bazel server is shut down before measuring.
  ./bazelw --output_base="$OUTPUT_BASE" build -c opt --jobs=2 \
    --symlink_prefix=/ "${targets[@]}" >&2
  BIN_DIR=$(./bazelw --output_base="$OUTPUT_BASE" info -c opt bazel-bin 2>/dev/null)
  ./bazelw --output_base="$OUTPUT_BASE" shutdown >/dev/null 2>&1 || true
  [ -z "$FADVISE" ] && FADVISE=$BIN_DIR/bench/fadvise_dontneed
  want kqio && [ -z "$KQIO_BIN" ] && KQIO_BIN=$BIN_DIR/fileserver/kqio_fileserver
fi

# --- the served tree ---------------------------------------------------------
fs_type() { stat -f -c %T "$1" 2>/dev/null || echo unknown; }
DIR_NOTE=""
if [ "$MIXED" = 1 ]; then
  case $(fs_type "$BASE_DIR") in
    tmpfs|ramfs)
      DIR_NOTE="$BASE_DIR is $(fs_type "$BASE_DIR"), moved to /var/tmp"
      BASE_DIR=/var/tmp ;;
  esac
fi
WORK=$(mktemp -d "$BASE_DIR/kqio_fsbench.XXXXXX")
chmod 755 "$WORK"   # nginx's workers may run as another user
ROOT=$WORK/root
mkdir -p "$ROOT/cold" "$WORK/nginx/tmp"
FSTYPE=$(fs_type "$WORK")
SIZES="4096 65536 1048576"
size_name() {
  case $1 in 4096) echo "4 KiB" ;; 65536) echo "64 KiB" ;; 1048576) echo "1 MiB" ;; *) echo "$1 B" ;; esac
}
for s in $SIZES; do head -c "$s" /dev/urandom >"$ROOT/f$s.bin"; done
COLD_PATHS=()
if [ "$MIXED" = 1 ]; then
  head -c $((8 << 20)) /dev/urandom >"$WORK/seed"
  for i in $(seq 0 $((COLD_FILES - 1))); do
    cp "$WORK/seed" "$ROOT/cold/c$i.bin"
    COLD_PATHS+=("$ROOT/cold/c$i.bin")
  done
  rm -f "$WORK/seed"
  "$FADVISE" "${COLD_PATHS[@]}"   # flushes them to disk as well
fi
chmod -R a+rX "$ROOT"

# The block device under $WORK, for "MiB read from disk" in the mixed part.
DISK_STAT=""
dev=$(df --output=source "$WORK" 2>/dev/null | tail -n 1)
[ -n "$dev" ] && [ -r "/sys/class/block/$(basename "$dev")/stat" ] &&
  DISK_STAT=/sys/class/block/$(basename "$dev")/stat
disk_read_mib() {  # sectors read (field 3) in MiB
  if [ -n "$DISK_STAT" ]; then awk '{ printf "%d", $3 * 512 / 1048576 }' "$DISK_STAT"; else echo -1; fi
}

# --- servers -----------------------------------------------------------------
# A TCP port nobody on this machine uses (/proc/net/tcp{,6}, any state).
pick_port() {
  local port hex i
  for i in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    hex=$(printf '%04X' "$port")
    if ! awk -v p="$hex" 'FNR > 1 { split($2, a, ":"); if (a[2] == p) f = 1 }
         END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$port"; return 0
    fi
  done
  echo "no free port found" >&2; return 1
}

# Waits until $2 answers 200 on /f4096.bin; fails if process $1 dies.
wait_http() {
  local pid=$1 port=$2 i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 \
         "http://127.0.0.1:$port/f4096.bin")" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# Same bytes as on disk, or the numbers mean nothing.
check_files() {
  local port=$1 s
  for s in $SIZES; do
    curl -sf -m 10 "http://127.0.0.1:$port/f$s.bin" | cmp -s - "$ROOT/f$s.bin" ||
      { echo "$2 serves /f$s.bin wrongly" >&2; return 1; }
  done
  if [ "$MIXED" = 1 ]; then
    curl -sf -m 30 "http://127.0.0.1:$port/cold/c0.bin" | cmp -s - "$ROOT/cold/c0.bin" ||
      { echo "$2 serves /cold/c0.bin wrongly" >&2; return 1; }
  fi
}

write_nginx_conf() {  # $1 = port
  local user_line="" temp="" t reuse=""
  # Workers run as the invoking user, with the rights kqio_fileserver has.
  [ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"
  # Debian's binary has these temp paths compiled under /var/lib/nginx,
  # which a non-root run cannot create.
  for t in client_body proxy fastcgi uwsgi scgi; do
    case $t in client_body) ;; *)
      nginx -V 2>&1 | grep -q -- "--without-http_${t}_module" && continue ;;
    esac
    temp="$temp    ${t}_temp_path $WORK/nginx/tmp/$t;"$'\n'
  done
  # With several workers, one listening socket per worker (as kqio has).
  [ "$THREADS" -gt 1 ] && reuse=" reuseport"
  local mime=""
  [ -r /etc/nginx/mime.types ] && mime="include /etc/nginx/mime.types;"
  cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
worker_processes $THREADS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    $mime
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    # nginx closes a keep-alive connection after 1000 requests by default;
    # kqio never does.  Lifted so nginx pays no reconnects.
    keepalive_requests 1000000;
$temp    server {
        listen 127.0.0.1:$1$reuse;
        root $ROOT;
    }
}
EOF
}

NGINX_PID="" NGINX_PORT="" KQIO_PID="" KQIO_PORT="" KQIO_LINE=""
start_nginx() {
  local port eflag=()
  nginx -h 2>&1 | grep -q -- ' -e ' && eflag=(-e "$WORK/nginx/error.log")
  for _ in 1 2 3; do
    port=$(pick_port)
    write_nginx_conf "$port"
    nginx -t -q -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" "${eflag[@]}" >&2
    setsid nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" "${eflag[@]}" \
      >"$WORK/nginx/stdout" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    if wait_http "$NGINX_PID" "$port"; then NGINX_PORT=$port; return 0; fi
    stop_group "$NGINX_PID"; forget_pid "$NGINX_PID"
    grep -q 'in use' "$WORK/nginx/error.log" 2>/dev/null || break
  done
  echo "nginx did not start:" >&2
  cat "$WORK/nginx/error.log" "$WORK/nginx/stdout" >&2 2>/dev/null
  return 1
}

start_kqio() {
  local i
  setsid "$KQIO_BIN" --root="$ROOT" --address=127.0.0.1 --port=0 \
    --threads="$THREADS" >"$WORK/kqio.out" 2>"$WORK/kqio.err" &
  KQIO_PID=$!
  PIDS+=("$KQIO_PID")
  # The port comes from the one start-up line (--port=0: the kernel chose).
  for i in $(seq 100); do
    KQIO_LINE=$(grep -m 1 '^kqio_fileserver: serving' "$WORK/kqio.out" || true)
    [ -n "$KQIO_LINE" ] && break
    kill -0 "$KQIO_PID" 2>/dev/null || break
    sleep 0.1
  done
  KQIO_PORT=$(printf '%s\n' "$KQIO_LINE" | sed -n 's|.*http://[^ ]*:\([0-9][0-9]*\)/.*|\1|p')
  if [ -z "$KQIO_PORT" ] || ! wait_http "$KQIO_PID" "$KQIO_PORT"; then
    echo "kqio_fileserver did not start:" >&2
    cat "$WORK/kqio.out" "$WORK/kqio.err" >&2
    return 1
  fi
}

# --- wrk ---------------------------------------------------------------------
LUA=$REPO/bench/fileserver_wrk.lua
# run_wrk OUT CONNECTIONS DURATION URL: one bounded wrk; OUT gets its text.
run_wrk() {
  local out=$1 conns=$2 dur=$3 url=$4 secs=${3%s}
  timeout -s KILL $((secs + 30)) \
    wrk -t1 -c"$conns" -d"$dur" --timeout 30s --latency -s "$LUA" "$url" \
    >"$out" 2>&1 || { echo "wrk failed on $url:" >&2; cat "$out" >&2; return 1; }
  grep -q '^FSBENCH ' "$out" || { echo "no result from wrk:" >&2; cat "$out" >&2; return 1; }
}
# field OUT NAME: one number from the FSBENCH line.
field() { sed -n "s/^FSBENCH .* $2=\([^ ]*\).*/\1/p; s/^FSBENCH $2=\([^ ]*\).*/\1/p" "$1" | head -n 1; }
rps() { awk -v r="$(field "$1" requests)" -v s="$(field "$1" seconds)" 'BEGIN { printf "%.0f", r / s }'; }
ms() { awk -v u="$1" 'BEGIN { if (u == "" || u < 0) print "-"; else printf "%.2f ms", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
check_errors() {  # OUT LABEL
  local e; e=$(field "$1" errors)
  [ "${e:-0}" = 0 ] || echo "  warning: $2: $e wrk errors (socket errors or non-2xx)"
}
url_of() { [ "$1" = kqio ] && echo "http://127.0.0.1:$KQIO_PORT" || echo "http://127.0.0.1:$NGINX_PORT"; }

# --- run ---------------------------------------------------------------------
SERVER_LIST=()
want kqio && SERVER_LIST+=(kqio)
want nginx && SERVER_LIST+=(nginx)
[ ${#SERVER_LIST[@]} -gt 0 ] || { echo "--servers names neither kqio nor nginx" >&2; exit 2; }

want kqio && start_kqio
want nginx && start_nginx
for srv in "${SERVER_LIST[@]}"; do check_files "$(url_of "$srv" | sed 's|.*:||')" "$srv"; done

echo "kqio_fileserver vs nginx, loopback, threads=$THREADS, wrk -t1 -c$CONNECTIONS -d$DURATION"
echo "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) (start)"
echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), worker_processes $THREADS$([ "$THREADS" -gt 1 ] && echo " (listen reuseport)"), sendfile on, tcp_nopush on, access_log off, keepalive_requests 1000000"
want kqio && echo "kqio: ${KQIO_LINE#kqio_fileserver: }"
echo "root: $ROOT ($FSTYPE)${DIR_NOTE:+; $DIR_NOTE}"
echo

# Warm both up (connections, page cache, nginx's worker) before measuring.
for srv in "${SERVER_LIST[@]}"; do
  run_wrk "$WORK/warm.$srv" "$CONNECTIONS" 1s "$(url_of "$srv")/f4096.bin"
done

printf '%-7s %12s %12s %6s %10s %10s  %s\n' size "kqio req/s" "nginx req/s" ratio \
  "kqio p99" "nginx p99" target
for s in $SIZES; do
  for srv in "${SERVER_LIST[@]}"; do
    run_wrk "$WORK/t$s.$srv" "$CONNECTIONS" "$DURATION" "$(url_of "$srv")/f$s.bin"
  done
  kr="" nr="" kp="" np=""
  want kqio && { kr=$(rps "$WORK/t$s.kqio"); kp=$(field "$WORK/t$s.kqio" p99_us); }
  want nginx && { nr=$(rps "$WORK/t$s.nginx"); np=$(field "$WORK/t$s.nginx" p99_us); }
  verdict=""
  if [ -n "$kr" ] && [ -n "$nr" ] && [ "$THREADS" = 1 ] && [ "$s" -le 65536 ]; then
    verdict=$(awk -v kr="$kr" -v nr="$nr" -v kp="$kp" -v np="$np" 'BEGIN {
      if (kr >= nr && kp <= np) print "ok (>= 1.0x, p99 no worse)";
      else if (kr >= nr) print "MISSED (p99 worse)";
      else print "MISSED (< 1.0x)" }')
  fi
  printf '%-7s %12s %12s %6s %10s %10s  %s\n' "$(size_name "$s")" "${kr:--}" "${nr:--}" \
    "$(ratio "$kr" "$nr")" "$(ms "$kp")" "$(ms "$np")" "$verdict"
  for srv in "${SERVER_LIST[@]}"; do check_errors "$WORK/t$s.$srv" "$srv $(size_name "$s")"; done
done

# mixed_run SERVER cached|cold: the hot 4 KiB wrk while a second wrk pulls
# random cold-set files.  "cached": the set was read into the page cache
# first (the server only shares its CPU with the big transfers); "cold": it
# is dropped before the run and every 0.5 s during it, so the big transfers
# wait for the disk.  Results: $WORK/{mixed,bulk}.SERVER.MODE, and
# MIX_CACHED (% of the set cached at the start), MIX_DISK (MiB read from the
# disk during the run, -1 unknown).
mixed_run() {
  local srv=$1 mode=$2 url drop_pid="" bulk_pid disk0 disk1
  url=$(url_of "$srv")
  if [ "$mode" = cold ]; then
    "$FADVISE" "${COLD_PATHS[@]}"
    # Keep them cold: at this disk's speed the whole set would otherwise be
    # cached a few seconds into the run.
    # shellcheck disable=SC2016  # expanded by the inner bash
    setsid bash -c 'while :; do "$0" "$@" || exit 1; sleep 0.5; done' \
      "$FADVISE" "${COLD_PATHS[@]}" &
    drop_pid=$!
    PIDS+=("$drop_pid")
  else
    cat "${COLD_PATHS[@]}" >/dev/null
  fi
  MIX_CACHED=$("$FADVISE" --resident "${COLD_PATHS[@]}" | cut -d' ' -f1)
  disk0=$(disk_read_mib)
  FSBENCH_COLD_FILES=$COLD_FILES setsid \
    timeout -s KILL $((SECS + 40)) wrk -t1 -c"$COLD_CONNECTIONS" -d$((SECS + 2))s \
    --timeout 30s -s "$LUA" "$url/" >"$WORK/bulk.$srv.$mode" 2>&1 &
  bulk_pid=$!
  PIDS+=("$bulk_pid")
  sleep 1   # the big transfers are under way before measuring
  run_wrk "$WORK/mixed.$srv.$mode" "$HOT_CONNECTIONS" "$DURATION" "$url/f4096.bin"
  wait "$bulk_pid" || true
  forget_pid "$bulk_pid"
  grep -q '^FSBENCH ' "$WORK/bulk.$srv.$mode" ||
    { echo "no result from the bulk wrk:" >&2; cat "$WORK/bulk.$srv.$mode" >&2; return 1; }
  disk1=$(disk_read_mib)
  if [ -n "$drop_pid" ]; then stop_group "$drop_pid"; forget_pid "$drop_pid"; fi
  MIX_DISK=-1
  [ "$disk0" -ge 0 ] && MIX_DISK=$((disk1 - disk0))
  check_errors "$WORK/mixed.$srv.$mode" "$srv hot ($mode)"
  check_errors "$WORK/bulk.$srv.$mode" "$srv bulk ($mode)"
}
mib_per_s() {
  awk -v b="$(field "$1" bytes)" -v s="$(field "$1" seconds)" \
    'BEGIN { if (s > 0) printf "%.0f", b / s / 1048576; else print "-" }'
}

if [ "$MIXED" = 1 ]; then
  echo
  echo "mixed: hot 4 KiB file (wrk -t1 -c$HOT_CONNECTIONS, -d$DURATION) while wrk -t1 -c$COLD_CONNECTIONS pulls"
  echo "random 8 MiB files ($COLD_FILES of them, $((COLD_FILES * 8)) MiB); nginx: default config (no aio, no open_file_cache)"
  case $FSTYPE in
    tmpfs|ramfs) echo "WARNING: $WORK is on $FSTYPE: the big files live in memory and cannot be cold" ;;
    *) echo "files on $FSTYPE (${dev:-?}); cold = dropped with POSIX_FADV_DONTNEED before and every 0.5 s during the run" ;;
  esac
  printf '%-6s %10s %10s %10s %10s %10s %10s %9s %8s\n' server "alone p99" "cached p99" \
    "cold p50" "cold p99" "cold hot/s" "bulk MiB/s" "disk MiB" "cached"
  declare -A COLD_P99
  for srv in "${SERVER_LIST[@]}"; do
    run_wrk "$WORK/alone.$srv" "$HOT_CONNECTIONS" "$DURATION" "$(url_of "$srv")/f4096.bin"
    mixed_run "$srv" cached
    mixed_run "$srv" cold
    COLD_P99[$srv]=$(field "$WORK/mixed.$srv.cold" p99_us)
    disk=$MIX_DISK
    [ "$disk" -lt 0 ] && disk="-"
    printf '%-6s %10s %10s %10s %10s %10s %10s %9s %7s%%\n' "$srv" \
      "$(ms "$(field "$WORK/alone.$srv" p99_us)")" \
      "$(ms "$(field "$WORK/mixed.$srv.cached" p99_us)")" \
      "$(ms "$(field "$WORK/mixed.$srv.cold" p50_us)")" "$(ms "${COLD_P99[$srv]}")" \
      "$(rps "$WORK/mixed.$srv.cold")" "$(mib_per_s "$WORK/bulk.$srv.cold")" "$disk" "$MIX_CACHED"
  done
  echo "(alone = hot wrk only; cached = big files in the page cache; cold = big files on disk;"
  echo " cold hot/s = hot requests/s in the cold run; bulk MiB/s and disk MiB = the big"
  echo " transfers in the cold run and what the disk delivered meanwhile; cached = % of the big"
  echo " files in the page cache as the cold run began)"
  if want kqio && want nginx; then
    echo "hot p99 with cold files, kqio/nginx: $(ratio "${COLD_P99[kqio]}" "${COLD_P99[nginx]}") (target < 1.0)"
  fi
fi
echo
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) (end)"
