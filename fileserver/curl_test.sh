#!/usr/bin/env bash
# End-to-end with curl, an independent client: the real kqio_fileserver on an
# ephemeral port, then GET (no --compressed: plain bytes, no
# Content-Encoding), HEAD (-I), a range (-r), If-Modified-Since and
# If-Unmodified-Since (-z), If-None-Match with the ETag curl got (by hand and
# with --etag-compare), connection reuse, a 404 and a traversal (400), a
# 10 MiB download piped through sha256sum, and a clean exit on SIGTERM.
#
# curl is installed when missing and we are root; otherwise the test FAILS
# with a message (it never passes without having run).
set -euo pipefail

WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/curl_testXXXXXX")
ROOT=$WORK/root
PID=
CHECKS=0

fail() {
  echo "FAIL: $*" >&2
  if [[ -s $WORK/err ]]; then
    echo "--- server stderr (tail) ---" >&2
    tail -c 4096 "$WORK/err" >&2
  fi
  exit 1
}
ok() {
  CHECKS=$((CHECKS + 1))
  echo "ok: $*"
}
cleanup() {
  if [[ -n $PID ]]; then kill -KILL "$PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- curl -------------------------------------------------------------------
if ! command -v curl >/dev/null 2>&1; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "curl is missing: installing it" >&2
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends \
      curl </dev/null >&2 || true
  fi
  command -v curl >/dev/null 2>&1 ||
    fail "curl is not installed and could not be installed: run 'apt-get install curl'"
fi
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum (coreutils) is missing"
# No proxy from the environment, bounded, errors shown, no progress meter.
CURL=(curl -sS --noproxy '*' --max-time 120)

# --- the server ---------------------------------------------------------------
BIN=$TEST_SRCDIR/$TEST_WORKSPACE/fileserver/kqio_fileserver
[[ -x $BIN ]] || fail "no binary at $BIN"
mkdir -p "$ROOT/dir"
printf 'hello, world\n' >"$ROOT/hello.txt"
printf '<!doctype html><title>home</title>\n' >"$ROOT/index.html"
printf 'a\n' >"$ROOT/dir/a.txt"
# 10 MiB, deterministic.  (Not `seq | head`: seq's SIGPIPE fails the pipe.)
seq 1 3000000 >"$WORK/seq"
head -c $((10 << 20)) "$WORK/seq" >"$ROOT/ten.bin"
[[ $(stat -c %s "$ROOT/ten.bin") -eq $((10 << 20)) ]] || fail "could not write ten.bin"

"$BIN" --root="$ROOT" --port=0 --threads=2 >"$WORK/out" 2>"$WORK/err" &
PID=$!
line=
for _ in $(seq 600); do  # 60 s: the binary may be built with a sanitizer
  line=$(grep -m1 '^kqio_fileserver: serving' "$WORK/out" || true)
  [[ -n $line ]] && break
  kill -0 "$PID" 2>/dev/null || fail "the server exited before its start-up line"
  sleep 0.1
done
[[ -n $line ]] || fail "no start-up line within 60 s"
PORT=$(sed -nE 's|.*http://[^ ]*:([0-9]+)/.*|\1|p' <<<"$line")
[[ -n $PORT ]] || fail "no port in: $line"
BASE=http://127.0.0.1:$PORT
echo "$line"

# A field's value from a header dump (case-insensitive name, CR stripped).
field() { grep -i "^$1:" "$2" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }

# --- GET --------------------------------------------------------------------
code=$("${CURL[@]}" -D "$WORK/h" -o "$WORK/body" -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 200 ]] || fail "GET /hello.txt: $code"
[[ $(cat "$WORK/body") == 'hello, world' ]] || fail "GET body: $(cat "$WORK/body")"
[[ $(field Content-Length "$WORK/h") == 13 ]] || fail "Content-Length: $(field Content-Length "$WORK/h")"
[[ $(field Content-Type "$WORK/h") == text/plain* ]] || fail "Content-Type: $(field Content-Type "$WORK/h")"
[[ -z $(field Content-Encoding "$WORK/h") ]] || fail "Content-Encoding without --compressed"
ok "GET: 200, body, Content-Length, Content-Type, no Content-Encoding"

[[ $("${CURL[@]}" "$BASE/") == '<!doctype html><title>home</title>' ]] || fail "GET / is not index.html"
ok "GET /: index.html"

# --- HEAD ---------------------------------------------------------------------
"${CURL[@]}" -I "$BASE/hello.txt" >"$WORK/head"
head -1 "$WORK/head" | grep -q '^HTTP/1.1 200' || fail "HEAD: $(head -1 "$WORK/head")"
[[ $(field Content-Length "$WORK/head") == 13 ]] || fail "HEAD Content-Length"
[[ $(field Accept-Ranges "$WORK/head") == bytes ]] || fail "HEAD Accept-Ranges"
[[ -n $(field Last-Modified "$WORK/head") ]] || fail "HEAD Last-Modified"
ETAG=$(field ETag "$WORK/head")
[[ $ETAG == \"*\" ]] || fail "HEAD ETag is not a strong tag: '$ETAG'"
[[ $ETAG == "$(field ETag "$WORK/h")" ]] || fail "HEAD and GET ETags differ"
ok "HEAD -I: 200, Content-Length, Accept-Ranges, Last-Modified, strong ETag = GET's"

# --- Range --------------------------------------------------------------------
code=$("${CURL[@]}" -r 2-5 -D "$WORK/h" -o "$WORK/body" -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 206 ]] || fail "range: $code"
[[ $(cat "$WORK/body") == 'llo,' ]] || fail "range body: $(cat "$WORK/body")"
[[ $(field Content-Range "$WORK/h") == 'bytes 2-5/13' ]] || fail "Content-Range: $(field Content-Range "$WORK/h")"
code=$("${CURL[@]}" -r 100-200 -o /dev/null -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 416 ]] || fail "unsatisfiable range: $code"
ok "range -r: 206 with Content-Range; 416 past the end"

# --- conditional requests -----------------------------------------------------
# -z FILE: If-Modified-Since with the file's own mtime.  (curl creates the
# output file only when a body arrives, hence the rm before each 304.)
rm -f "$WORK/body"
code=$("${CURL[@]}" -z "$ROOT/hello.txt" -o "$WORK/body" -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 304 && ! -s $WORK/body ]] || fail "-z same mtime: $code"
code=$("${CURL[@]}" -z 'Sat, 01 Jan 2000 00:00:00 GMT' -o "$WORK/body" -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 200 && $(cat "$WORK/body") == 'hello, world' ]] || fail "-z old date: $code"
# (curl's %{http_code} says 304 whenever its time condition fails, so the
# status line is read from the header dump here.)
"${CURL[@]}" -z '-Sat, 01 Jan 2000 00:00:00 GMT' -D "$WORK/h" -o /dev/null "$BASE/hello.txt"
status=$(head -1 "$WORK/h" | tr -d '\r')
[[ $status == 'HTTP/1.1 412 '* ]] || fail "-z -date (If-Unmodified-Since): $status"
ok "-z: 304 for the file's mtime, 200 for an old date, 412 for If-Unmodified-Since"

rm -f "$WORK/body"
code=$("${CURL[@]}" -H "If-None-Match: $ETAG" -o "$WORK/body" -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 304 && ! -s $WORK/body ]] || fail "If-None-Match with the ETag: $code"
code=$("${CURL[@]}" -H 'If-None-Match: "other"' -o /dev/null -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 200 ]] || fail "If-None-Match with another tag: $code"
"${CURL[@]}" --etag-save "$WORK/etag" -o /dev/null "$BASE/hello.txt"
code=$("${CURL[@]}" --etag-compare "$WORK/etag" -o /dev/null -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 304 ]] || fail "--etag-compare: $code"
ok "If-None-Match: 304 with curl's ETag (by hand and --etag-compare), 200 otherwise"

# --- errors, connection reuse -------------------------------------------------
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/nope.txt")
[[ $code == 404 ]] || fail "missing file: $code"
code=$("${CURL[@]}" --path-as-is -o /dev/null -w '%{http_code}' "$BASE/../hello.txt")
[[ $code == 400 ]] || fail "/../hello.txt: $code"
code=$("${CURL[@]}" -X DELETE -D "$WORK/h" -o /dev/null -w '%{http_code}' "$BASE/hello.txt")
[[ $code == 405 && $(field Allow "$WORK/h") == *GET* ]] || fail "DELETE: $code"
ok "404, 400 for /../, 405 with Allow"

connects=$("${CURL[@]}" -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' \
  "$BASE/hello.txt" "$BASE/dir/a.txt" "$BASE/hello.txt")
[[ $connects == '1 0 0 ' ]] || fail "keep-alive: connections per request: $connects"
ok "keep-alive: three requests on one connection"

# --- 10 MiB through sha256sum -------------------------------------------------
want=$(sha256sum <"$ROOT/ten.bin" | cut -d' ' -f1)
got=$("${CURL[@]}" "$BASE/ten.bin" | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] || fail "10 MiB download: sha256 $got, want $want"
size=$("${CURL[@]}" -o /dev/null -w '%{size_download}' "$BASE/ten.bin")
[[ $size == $((10 << 20)) ]] || fail "10 MiB download: $size bytes"
ok "10 MiB download: sha256 matches, $size bytes"

# --- SIGTERM: exit 0 ------------------------------------------------------------
kill -TERM "$PID"
for _ in $(seq 600); do
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$PID" 2>/dev/null && fail "still running 60 s after SIGTERM"
rc=0
wait "$PID" || rc=$?
PID=
[[ $rc == 0 ]] || fail "exit status $rc after SIGTERM"
ok "SIGTERM: exit 0"

echo "PASS: $CHECKS checks"
