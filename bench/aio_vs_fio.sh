#!/bin/sh
# kqio's io_uring engine against fio --ioengine=io_uring on the same job:
# random 4 KiB reads of one file, one thread, QD requests in flight, page
# cache cold (O_DIRECT) and hot, SECONDS each; prints both IOPS and the
# ratio kqio / fio (issue 4's target: >= 0.9).
#
#   bench/aio_vs_fio.sh [QD] [SECONDS] [SIZE_MIB] [DIR]     (default 32 5 256 /tmp)
#
# fio is Debian's (installed with apt-get when missing and run as root).  The
# benchmark binary is built -c opt with its own output base; the file is
# written by fio and removed at the end.
set -eu

QD=${1:-32}
SECONDS_PER_RUN=${2:-5}
SIZE_MIB=${3:-256}
DIR=${4:-/tmp}
OUTPUT_BASE=${KQIO_OUTPUT_BASE:-$HOME/.cache/kqio-ob-aiobench}

cd "$(dirname "$0")/.."

if ! command -v fio >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y fio >/dev/null
  else
    echo "fio is missing: apt-get install fio" >&2
    exit 1
  fi
fi

# Debian's python3 (json only; no third-party module needed).
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# KQIO_AIO_BENCH_BIN: an already built binary (skips the build).
BIN=${KQIO_AIO_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  ./bazelw --output_base="$OUTPUT_BASE" build -c opt --symlink_prefix=/ \
    //bench:aio_engines_benchmark >&2
  BIN="$(./bazelw --output_base="$OUTPUT_BASE" info -c opt bazel-bin 2>/dev/null)/bench/aio_engines_benchmark"
fi

WORK=$(mktemp -d "$DIR/kqio_aio_vs_fio.XXXXXX")
FILE="$WORK/data"
trap 'rm -rf "$WORK"' EXIT INT TERM

# fio writes the file (and it is flushed before a cold run reads it).
fio --name=create --filename="$FILE" --size="${SIZE_MIB}M" --rw=write \
  --bs=1M --end_fsync=1 --output=/dev/null

# One fio job: io_uring, one thread (fio's default numjobs=1), QD in flight.
# invalidate=0: fio would otherwise drop the cache before the hot run.
run_fio() {  # $1 = direct (0|1)
  fio --name=randread --filename="$FILE" --size="${SIZE_MIB}M" \
    --ioengine=io_uring --rw=randread --bs=4k --iodepth="$QD" \
    --direct="$1" --invalidate=0 --time_based \
    --runtime="$SECONDS_PER_RUN" --ramp_time=0 --norandommap \
    --randrepeat=0 --output-format=json |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["iops"])'
}

run_kqio() {  # $1 = hot|cold
  "$BIN" --file="$FILE" --seconds="$SECONDS_PER_RUN" --small_files=0 \
    --qds="$QD" --filter="rand4k/$1/qd$QD/kqio-uring" \
    --json="$WORK/kqio.json" >/dev/null 2>"$WORK/kqio.err" ||
    { cat "$WORK/kqio.err" >&2; exit 1; }
  "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; assert not r["error"], r["error"]; print(r["ops_per_s"])' \
    "$WORK/kqio.json"
}

# Warm the cache for the hot runs.
cat "$FILE" >/dev/null

echo "random 4 KiB reads, qd $QD, ${SECONDS_PER_RUN}s each, ${SIZE_MIB} MiB file in $DIR"
echo "machine: $(nproc) CPUs, kernel $(uname -r), $(fio --version)"
printf '%-6s %14s %14s %8s\n' cache "fio IOPS" "kqio-uring" ratio
for cache in cold hot; do
  direct=1
  [ "$cache" = hot ] && direct=0
  fio_iops=$(run_fio "$direct")
  kqio_iops=$(run_kqio "$cache")
  "$PY" -c 'import sys
c, f, k = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
r = k / f
print("%-6s %14.0f %14.0f %8.2f  %s" % (c, f, k, r, "ok (>= 0.9)" if r >= 0.9 else "MISSED (< 0.9)"))' \
    "$cache" "$fio_iops" "$kqio_iops"
done
