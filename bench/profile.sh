#!/usr/bin/env bash
# Profiles aftersalesd (release build) under callgrind with one bounded load, then prints
# the top functions by inclusive and exclusive cost. Not part of `make bench`.
#
#   bench/profile.sh throughput   50 callers, CreateCase + MerchantAgree, fsync everysec
#   bench/profile.sh getcase      REQ GetCase round trips, one at a time
#   bench/profile.sh burst        proposals expiring together (the deadline path)
#   bench/profile.sh snapshot     TakeSnapshot of N cases (loop-thread and writer-thread cost)
#   bench/profile.sh echo         the floor: the libzmq REQ/REP echo server of row 1 under the
#                                 same 5 000 round trips as `getcase` (prints instructions per call)
#
# Output: bench/results/callgrind-<load>.out (open with callgrind_annotate or kcachegrind)
# and bench/results/callgrind-<load>.txt (the annotated top).
#
# PROFILE_DAEMON=path profiles another build of aftersalesd (an A/B of two commits under
# the same load; PROFILE_OUT=name writes callgrind-<name>.* instead; ab-* names are not committed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOAD="${1:-throughput}"
BIN="$ROOT/.build/release"
WORK="$(mktemp -d /tmp/aftersales-profile.XXXXXX)"
OUT="$ROOT/bench/results/callgrind-${PROFILE_OUT:-$LOAD}"
DAEMON="${PROFILE_DAEMON:-$BIN/aftersalesd}"
PID=""
cleanup() {
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -CONT "$PID" 2>/dev/null || true; kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# Prints the instructions per call of this run's last dump (the one taken right after the
# load, not the one written at exit).
per_call() {  # per_call LABEL CALLS
  local last total
  last="$(ls "$OUT".out.* 2>/dev/null | sort -V | tail -1)"
  total="$(callgrind_annotate "${last:-$OUT.out}" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
  echo "[profile] $1: $total instructions for $2 calls = $((total / $2)) per call" >&2
}
mkdir -p "$ROOT/bench/results"

rm -f "$OUT".out*
TTL=12h
[[ "$LOAD" == burst ]] && TTL=40s
# --collect-atstart=no + --toggle-collect would need symbol names; instead the set-up is
# cheap next to the load, and callgrind_control --zero resets the counters before it.
if [[ "$LOAD" == echo ]]; then
  ECHO="$ROOT/bench/echo/build/echo_server"
  [[ -x "$ECHO" ]] || { mkdir -p "$(dirname "$ECHO")"; cc -O2 -o "$ECHO" bench/echo/echo_server.c $(pkg-config --cflags --libs libzmq); }
  valgrind --tool=callgrind --callgrind-out-file="$OUT.out" "$ECHO" 'tcp://127.0.0.1:*' 379 > "$WORK/out" 2> "$WORK/err" &
  PID=$!
  for _ in $(seq 1 600); do grep -q 'ready' "$WORK/out" 2>/dev/null && break; sleep 0.1; done
  RPC="$(sed -n 's/.*rpc=\([^ ]*\).*/\1/p' "$WORK/out")"
  callgrind_control --zero "$PID" >/dev/null
  "$BIN/aftersales-bench" latency --endpoint "$RPC" --target echo --case-id AS0000000001 --count 5000 --warmup 100 --seconds 60
  callgrind_control --dump "$PID" >/dev/null 2>&1 || true
  kill -TERM "$PID"; for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  PID=""
  per_call "echo server" 5100
  exit 0
fi
# valgrind 3.19 gives up on the DWARF of this build ("possibly corrupted debuginfo"), so
# it profiles a copy without debug sections; the symbol table still names every function.
cp "$DAEMON" "$WORK/aftersalesd"
strip --strip-debug "$WORK/aftersalesd"
valgrind --tool=callgrind --callgrind-out-file="$OUT.out" --separate-threads=no \
  "$WORK/aftersalesd" --rpc 'tcp://127.0.0.1:*' --pub 'tcp://127.0.0.1:*' --data-dir "$WORK/data" \
  --fsync everysec --snapshot-interval 0 --proposal-ttl "$TTL" --log-level warning > "$WORK/out" 2> "$WORK/err" &
PID=$!
for _ in $(seq 1 600); do grep -q ' ready ' "$WORK/out" 2>/dev/null && break; sleep 0.1; done
RPC="$(sed -n 's/.* rpc=\([^ ]*\).*/\1/p' "$WORK/out")"
PUB="$(sed -n 's/.* pub=\([^ ]*\).*/\1/p' "$WORK/out")"
echo "[profile] daemon under callgrind at $RPC ($LOAD)" >&2

case "$LOAD" in
  throughput)
    callgrind_control --zero "$PID" >/dev/null
    "$BIN/aftersales-bench" throughput --endpoint "$RPC" --connections 50 --seconds 30 --warmup-seconds 2 | tee "$WORK/load.json" ;;
  getcase)
    PREP="$("$BIN/aftersales-bench" prepare --endpoint "$RPC")"
    CASE_ID="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["case_id"])' "$PREP")"
    callgrind_control --zero "$PID" >/dev/null
    "$BIN/aftersales-bench" latency --endpoint "$RPC" --case-id "$CASE_ID" --count 5000 --warmup 100 --seconds 60 ;;
  burst)
    # Creation is not what we look at: zero the counters once the proposals exist (the
    # driver logs "created"), so the profile holds the expiries and the GetCase load.
    "$BIN/aftersales-bench" burst --rpc "$RPC" --pub "$PUB" --count 5000 --rate 200 --baseline-seconds 2 \
      2> >(while read -r line; do echo "$line" >&2; [[ "$line" == *created* ]] && callgrind_control --zero "$PID" >/dev/null; done) ;;
  snapshot)
    "$BIN/aftersales-bench" scale --rpc "$RPC" --pid "$PID" --count 20000 --journal-tail 0 --rate 200 --baseline-seconds 1 \
      2> >(while read -r line; do echo "$line" >&2; [[ "$line" == *"snapshot under load"* ]] && callgrind_control --zero "$PID" >/dev/null; done) ;;
  *) echo "unknown load $LOAD" >&2; exit 2 ;;
esac

callgrind_control --dump "$PID" >/dev/null 2>&1 || true
kill -TERM "$PID"; for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
PID=""
# Read the dump taken right after the load (OUT.out.N), not the one written at exit
# (which holds only the shutdown).
LAST="$(ls "$OUT".out.* 2>/dev/null | sort -V | tail -1)"
LAST="${LAST:-$OUT.out}"
{
  echo "# callgrind: aftersalesd under '$LOAD' ($(date -u +%FT%TZ))"
  echo "## inclusive"
  callgrind_annotate --inclusive=yes "$LAST" 2>/dev/null | sed -n '1,80p'
  echo "## exclusive"
  callgrind_annotate --threshold=100 "$LAST" 2>/dev/null | sed -n "1,70p"
} > "$OUT.txt"
echo "[profile] $OUT.txt" >&2
case "$LOAD" in
  throughput) per_call throughput "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["call_count"])' "$WORK/load.json")" ;;
  getcase) per_call getcase 5100 ;;
esac
