#!/usr/bin/env bash
# make bench: build (release), start aftersalesd / the libzmq echo server / redis-server on
# loopback free ports, run the benchmarks of issue 7 in alternating rounds, print one table
# and write it to bench/results/latest.md. Everything started here is stopped on exit.
#
#   BENCH_QUICK=1   ~2-minute smoke run with small counts (figures are indicative only)
#   BENCH_ROUNDS=N  rounds of the alternating latency/throughput pairs (default 5; quick 2)
#   BENCH_SKIP_BUILD=1  use the binaries already in .build/release
#   BENCH_ONLY="latency throughput expiry burst scale refused curve metrics cluster client peers"  run a subset
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK="${BENCH_QUICK:-0}"
ONLY="${BENCH_ONLY:-latency throughput expiry burst scale refused curve metrics cluster client peers}"
BIN="$ROOT/.build/release"
BENCH="$BIN/aftersales-bench"
DAEMON="$BIN/aftersalesd"
ECHO="$ROOT/bench/echo/build/echo_server"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"  # BENCH_RESULTS_DIR: elsewhere (a partial run that must not replace latest.md)

if [[ "$QUICK" == 1 ]]; then
  ROUNDS="${BENCH_ROUNDS:-2}"
  LAT_COUNT=5000; LAT_SECONDS=2
  CLIENT_ROUNDS=4; CLIENT_LAT_COUNT=3000; CLIENT_LAT_SECONDS=0.5
  TP_SECONDS=2
  REDIS_GET_N=5000; REDIS_SET_N=100000; REDIS_P16_N=400000
  EXPIRY_N=20000; EXPIRY_SPREAD=10
  BURST_N=10000; BURST_TTL=12s; BURST_ROUNDS=1
  SCALE_N=50000; SCALE_TAIL=5000
  FAILOVER_KILLS=3; NOTICE_CASES=100
else
  ROUNDS="${BENCH_ROUNDS:-5}"
  LAT_COUNT=20000; LAT_SECONDS=5
  CLIENT_ROUNDS=$((ROUNDS * 2)); CLIENT_LAT_COUNT=20000; CLIENT_LAT_SECONDS=1.5
  TP_SECONDS=5
  REDIS_GET_N=20000; REDIS_SET_N=500000; REDIS_P16_N=3000000
  EXPIRY_N="${BENCH_EXPIRY_N:-1000000}"; EXPIRY_SPREAD=60
  BURST_N=100000; BURST_TTL=25s; BURST_ROUNDS=${BENCH_BURST_ROUNDS:-3}
  SCALE_N="${BENCH_SCALE_N:-1000000}"; SCALE_TAIL=50000
  FAILOVER_KILLS=10; NOTICE_CASES=400
fi
# Payload of the Redis SETs: about the size of a CreateCase request.
REDIS_SET_BYTES=150

WORK="$(mktemp -d /tmp/aftersales-bench.XXXXXX)"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
declare -A PID_OF=()

log() { printf '[run] %s\n' "$*" >&2; }

stop_pid() {  # stop_pid PID [seconds]: SIGCONT+SIGTERM, wait (bounded), then SIGKILL
  local pid="$1" limit="${2:-60}" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local name
  for name in "${!PID_OF[@]}"; do stop_pid "${PID_OF[$name]}" 30; done
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() {  # wait_ready FILE PID: until FILE has a "ready" line (30 s)
  local file="$1" pid="$2" i
  for ((i = 0; i < 3000; i++)); do
    grep -q ' ready ' "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { log "process $pid died; see $file"; cat "$file.err" >&2 2>/dev/null || true; return 1; }
    sleep 0.01
  done
  log "not ready after 30 s: $file"; return 1
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2" | head -1; }
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# start_daemon NAME DATADIR ARGS...: sets RPC_<NAME>, PUB_<NAME>, PID_OF[NAME]
start_daemon() {
  local name="$1" dir="$2"; shift 2
  mkdir -p "$dir"
  "$DAEMON" --rpc 'tcp://127.0.0.1:*' --pub 'tcp://127.0.0.1:*' --data-dir "$dir" \
    --snapshot-interval 0 --log-level warning "$@" > "$WORK/$name.out" 2> "$WORK/$name.out.err" &
  PID_OF[$name]=$!
  wait_ready "$WORK/$name.out" "${PID_OF[$name]}"
  printf -v "RPC_$name" '%s' "$(field rpc "$WORK/$name.out")"
  printf -v "PUB_$name" '%s' "$(field pub "$WORK/$name.out")"
}
stop_named() { stop_pid "${PID_OF[$1]}" "${2:-60}"; unset "PID_OF[$1]"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

record() {  # record ROUND JSON-LINE
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["round"]=int(sys.argv[1]); print(json.dumps(d))' "$1" "$2" >> "$RESULTS"
}

# redis-benchmark's output → one JSON line (bench/redis_parse.py)
redis_latency() { python3 "$ROOT/bench/redis_parse.py" latency; }
redis_rps() { python3 "$ROOT/bench/redis_parse.py" csv "$1"; }

# ---------------------------------------------------------------------------------------
STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
T0=$SECONDS
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building (release)"
  # One --product per invocation (SwiftPM builds only the last one given).
  swift build -c release --product aftersalesd ${SWIFT_BUILD_FLAGS:-} >&2
  swift build -c release --product aftersales-bench ${SWIFT_BUILD_FLAGS:-} >&2
  mkdir -p "$(dirname "$ECHO")"
  cc -O2 -Wall -Wextra -o "$ECHO" bench/echo/echo_server.c $(pkg-config --cflags --libs libzmq) >&2
fi
for tool in "$DAEMON" "$BENCH" "$ECHO"; do [[ -x "$tool" ]] || { log "missing $tool"; exit 1; }; done
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || { log "redis-server/redis-benchmark missing (make deps installs Debian's redis-server)"; exit 1; }

# Redis: in memory with an append-only file synced every second — the same durability as
# aftersalesd --fsync everysec. AOF rewrites are off so no fork lands inside a round.
REDIS_PORT="$(free_port)"
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0 \
  --daemonize no --logfile "$WORK/redis.log" &
PID_OF[redis]=$!
for ((i = 0; i < 300; i++)); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
RB=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT")

# --- 1 latency and 2 throughput: alternating rounds ------------------------------------
if [[ " $ONLY " == *" latency "* || " $ONLY " == *" throughput "* ]]; then
  start_daemon lat "$WORK/lat" --fsync everysec
  start_daemon es "$WORK/es" --fsync everysec
  start_daemon al "$WORK/al" --fsync always
  PREP="$("$BENCH" prepare --endpoint "$RPC_lat")"
  CASE_ID="$(json "$PREP" case_id)"; REPLY_BYTES="$(json "$PREP" reply_bytes)"
  log "GetCase: request $(json "$PREP" request_bytes) B, reply $REPLY_BYTES B"
  "$ECHO" 'tcp://127.0.0.1:*' "$REPLY_BYTES" > "$WORK/echo.out" 2> "$WORK/echo.out.err" &
  PID_OF[echo]=$!
  wait_ready "$WORK/echo.out" "${PID_OF[echo]}"
  RPC_echo="$(field rpc "$WORK/echo.out")"
  "${RB[@]}" -c 1 -n 100 -t set -d "$REPLY_BYTES" -q >/dev/null  # the key GET reads

  for ((r = 1; r <= ROUNDS; r++)); do
    if [[ " $ONLY " == *" latency "* ]]; then
      log "round $r/$ROUNDS: latency (daemon, echo, redis)"
      record $r "$("$BENCH" latency --endpoint "$RPC_lat" --target daemon --case-id "$CASE_ID" --count $LAT_COUNT --seconds $LAT_SECONDS)"
      record $r "$("$BENCH" latency --endpoint "$RPC_echo" --target echo --case-id "$CASE_ID" --count $LAT_COUNT --seconds $LAT_SECONDS)"
      record $r "$("${RB[@]}" -c 1 -n $REDIS_GET_N -t get -d "$REPLY_BYTES" 2>/dev/null | tr '\r' '\n' | redis_latency)"
    fi
    if [[ " $ONLY " == *" throughput "* ]]; then
      # The driver speaks ZMTP from its own thread (--raw-zmtp), as redis-benchmark speaks
      # RESP: through libzmq it spent twice redis-benchmark's CPU per call on the two cores
      # the servers share. One run per round through libzmq's DEALER, for the comparison.
      log "round $r/$ROUNDS: throughput (everysec, always, redis -c 50, pipelined, redis -P 16, everysec through libzmq)"
      record $r "$("$BENCH" throughput --endpoint "$RPC_es" --label everysec --raw-zmtp --connections 50 --inflight 1 --seconds $TP_SECONDS)"
      record $r "$("$BENCH" throughput --endpoint "$RPC_al" --label always --raw-zmtp --connections 50 --inflight 1 --seconds $TP_SECONDS)"
      record $r "$("${RB[@]}" -c 50 -n $REDIS_SET_N -t set -d $REDIS_SET_BYTES --csv 2>/dev/null | redis_rps redis_c50)"
      record $r "$("$BENCH" throughput --endpoint "$RPC_es" --label pipelined --raw-zmtp --connections 50 --inflight 16 --seconds $TP_SECONDS)"
      record $r "$("${RB[@]}" -c 50 -P 16 -n $REDIS_P16_N -t set -d $REDIS_SET_BYTES --csv 2>/dev/null | redis_rps redis_p16)"
      record $r "$("$BENCH" throughput --endpoint "$RPC_es" --label everysec-libzmq --connections 50 --inflight 1 --seconds $TP_SECONDS)"
    fi
  done
  stop_named echo; stop_named lat; stop_named es; stop_named al
fi

# --- 3 expiry precision ---------------------------------------------------------------
# A burst's ratio compares two 5-second windows of one run, and on a shared machine the
# "before" window's p99 alone moved between 340 and 1 560 µs across runs: each round is a
# fresh daemon with both bursts, and the table gives the median of the per-round ratios.
burst_rounds() {
  local r
  for ((r = 1; r <= BURST_ROUNDS; r++)); do
    log "round $r/$BURST_ROUNDS: burst: $BURST_N proposals expiring together under GetCase load (spread, then at one instant)"
    start_daemon burst "$WORK/burst" --fsync everysec --proposal-ttl "$BURST_TTL"
    record "$r" "$("$BENCH" burst --rpc "$RPC_burst" --pub "$PUB_burst" --count $BURST_N)"
    record "$r" "$("$BENCH" burst --rpc "$RPC_burst" --pub "$PUB_burst" --count $BURST_N --freeze --pid "${PID_OF[burst]}")"
    stop_named burst 120
    rm -rf "$WORK/burst"
  done
}

if [[ " $ONLY " == *" expiry "* ]]; then
  log "expiry: $EXPIRY_N proposals paced over $EXPIRY_SPREAD s"
  # TTL well past the creation time (which may exceed the pacing on a slow machine), so
  # every proposal is pending before the first fires and the expiries run on their own.
  EXPIRY_TTL=$((EXPIRY_SPREAD * 3 / 2 + 10))
  start_daemon exp "$WORK/exp" --fsync everysec --proposal-ttl "${EXPIRY_TTL}s"
  record 1 "$("$BENCH" expiry --ttl-seconds $EXPIRY_TTL --rpc "$RPC_exp" --pub "$PUB_exp" --count $EXPIRY_N --spread-seconds $EXPIRY_SPREAD)"
  stop_named exp 120
  rm -rf "$WORK/exp"
  burst_rounds
elif [[ " $ONLY " == *" burst "* ]]; then
  burst_rounds
fi

# --- 4 scale --------------------------------------------------------------------------
if [[ " $ONLY " == *" scale "* ]]; then
  log "scale: $SCALE_N open cases"
  start_daemon scale "$WORK/scale" --fsync everysec
  record 1 "$("$BENCH" scale --rpc "$RPC_scale" --pid "${PID_OF[scale]}" --count $SCALE_N --journal-tail $SCALE_TAIL)"
  sleep 1.5  # everysec: the tail is on disk
  kill -KILL "${PID_OF[scale]}"; wait "${PID_OF[scale]}" 2>/dev/null || true; unset "PID_OF[scale]"
  SNAP_FILES="$(ls -la "$WORK/scale" | tail -n +2 | awk '{print $5, $9}' | tr '\n' ';')"
  log "restart from snapshot + journal ($SNAP_FILES)"
  t0=$(date +%s%N)
  start_daemon scale2 "$WORK/scale" --fsync everysec --log-level info
  t1=$(date +%s%N)
  RSS_RESTART=$(awk '/VmRSS/ {print $2 * 1024}' "/proc/${PID_OF[scale2]}/status")
  RECOVERED_MS="$(grep recovered "$WORK/scale2.out.err" | sed -n 's/.* ms=\([0-9]*\).*/\1/p' | head -1)"
  record 1 "{\"bench\": \"restart\", \"restart_ms\": $(( (t1 - t0) / 1000000 )), \"rss_bytes\": $RSS_RESTART, \"recovered_ms\": \"${RECOVERED_MS}\", \"files\": \"$SNAP_FILES\"}"
  stop_named scale2 120
fi

# --- 6 CURVE on vs off -------------------------------------------------------------------
if [[ " $ONLY " == *" curve "* ]]; then
  log "curve: GetCase and throughput with CURVE on vs off, alternating rounds"
  KEYS="$WORK/keys"
  for name in daemon consumer merchant; do "$DAEMON" keygen --out "$KEYS" "$name" >/dev/null; done
  printf 'bench-consumer consumer-gateway %s\nbench-merchant merchant-gateway %s\n' \
    "$(cat "$KEYS/consumer.pub")" "$(cat "$KEYS/merchant.pub")" > "$KEYS/clients"
  CURVE_ARGS=(--server-key "$KEYS/daemon.pub" --key "$KEYS/consumer.key")
  start_daemon coff "$WORK/coff" --fsync everysec
  start_daemon con "$WORK/con" --fsync everysec --curve-secret-key "$KEYS/daemon.key" --clients "$KEYS/clients"
  CASE_OFF="$(json "$("$BENCH" prepare --endpoint "$RPC_coff")" case_id)"
  CASE_ON="$(json "$("$BENCH" prepare --endpoint "$RPC_con" "${CURVE_ARGS[@]}")" case_id)"
  for ((r = 1; r <= ROUNDS; r++)); do
    record $r "$("$BENCH" latency --endpoint "$RPC_coff" --target curve-off --case-id "$CASE_OFF" --count $LAT_COUNT --seconds $LAT_SECONDS)"
    record $r "$("$BENCH" latency --endpoint "$RPC_con" --target curve-on --case-id "$CASE_ON" --count $LAT_COUNT --seconds $LAT_SECONDS "${CURVE_ARGS[@]}")"
    record $r "$("$BENCH" throughput --endpoint "$RPC_coff" --label curve-off --split-roles --connections 50 --inflight 1 --seconds $TP_SECONDS)"
    record $r "$("$BENCH" throughput --endpoint "$RPC_con" --label curve-on --connections 50 --inflight 1 --seconds $TP_SECONDS \
      "${CURVE_ARGS[@]}" --merchant-key "$KEYS/merchant.key")"
  done
  stop_named coff; stop_named con
  rm -rf "$WORK/coff" "$WORK/con"
fi

# --- 7 metrics on vs off ------------------------------------------------------------------
if [[ " $ONLY " == *" metrics "* ]]; then
  log "metrics: GetCase and throughput with --metrics-listen on vs off (scraped every second), alternating rounds"
  start_daemon moff "$WORK/moff" --fsync everysec
  METRICS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  start_daemon mon "$WORK/mon" --fsync everysec --metrics-listen "127.0.0.1:$METRICS_PORT"
  # A scraper as Prometheus would run it (every second here, 15 s by default there).
  ( while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics" || true; done ) &
  SCRAPER=$!
  CASE_MOFF="$(json "$("$BENCH" prepare --endpoint "$RPC_moff")" case_id)"
  CASE_MON="$(json "$("$BENCH" prepare --endpoint "$RPC_mon")" case_id)"
  for ((r = 1; r <= ROUNDS; r++)); do
    record $r "$("$BENCH" latency --endpoint "$RPC_moff" --target metrics-off --case-id "$CASE_MOFF" --count $LAT_COUNT --seconds $LAT_SECONDS)"
    record $r "$("$BENCH" latency --endpoint "$RPC_mon" --target metrics-on --case-id "$CASE_MON" --count $LAT_COUNT --seconds $LAT_SECONDS)"
    record $r "$("$BENCH" throughput --endpoint "$RPC_moff" --label metrics-off --connections 50 --inflight 1 --seconds $TP_SECONDS)"
    record $r "$("$BENCH" throughput --endpoint "$RPC_mon" --label metrics-on --connections 50 --inflight 1 --seconds $TP_SECONDS)"
  done
  kill "$SCRAPER" 2>/dev/null || true
  stop_named moff; stop_named mon
  rm -rf "$WORK/moff" "$WORK/mon"
fi

# --- 8 cluster mode vs a daemon on its own ----------------------------------------------
if [[ " $ONLY " == *" cluster "* ]]; then
  log "cluster: one PostgreSQL + two members vs a daemon on its own (--fsync always: the same durability), alternating rounds"
  # Its own directory under /tmp: the server runs as an unprivileged user, who cannot enter $WORK (0700).
  PG_DIR="$(mktemp -u /tmp/aftersales-bench-pg.XXXXXX)"
  PG_LINE="$("$ROOT/scripts/pg-throwaway" start --owner-pid $$ "$PG_DIR")"
  PG_URL="${PG_LINE%% *}"
  PG_PID="${PG_LINE#* pid=}"; PG_PID="${PG_PID%% *}"
  "$DAEMON" cluster init --shards 16 "$PG_URL" >&2
  start_daemon c1 "$WORK/c1" --cluster "$PG_URL" --member-name c1
  start_daemon c2 "$WORK/c2" --cluster "$PG_URL" --member-name c2
  start_daemon solo "$WORK/solo" --fsync always
  "$BENCH" cluster-ready --endpoint "$RPC_c1" --members 2 >&2
  PREP_C="$("$BENCH" prepare --endpoint "$RPC_c1")"
  CASE_C="$(json "$PREP_C" case_id)"; OWNER_C="$(json "$PREP_C" endpoint)"
  CASE_SOLO="$(json "$("$BENCH" prepare --endpoint "$RPC_solo")" case_id)"
  for ((r = 1; r <= ROUNDS; r++)); do
    record $r "$("$BENCH" latency --endpoint "$OWNER_C" --target cluster --case-id "$CASE_C" --count $LAT_COUNT --seconds $LAT_SECONDS)"
    record $r "$("$BENCH" latency --endpoint "$RPC_solo" --target solo-always --case-id "$CASE_SOLO" --count $LAT_COUNT --seconds $LAT_SECONDS)"
    record $r "$("$BENCH" throughput --endpoint "$RPC_c1" --cluster --label cluster --connections 50 --inflight 1 --seconds $TP_SECONDS \
      --server-pid "${PID_OF[c1]}" --server-pid "${PID_OF[c2]}" --server-pid "$PG_PID")"
    record $r "$("$BENCH" throughput --endpoint "$RPC_solo" --label solo-always --connections 50 --inflight 1 --seconds $TP_SECONDS \
      --server-pid "${PID_OF[solo]}")"
  done
  stop_named c1; stop_named c2; stop_named solo
  "$ROOT/scripts/pg-throwaway" stop "$PG_DIR" >&2
  rm -rf "$PG_DIR"
  log "cluster: failover, kill -9 of a member then a new one, $FAILOVER_KILLS times (members' default 5 s lease)"
  record 1 "$("$BENCH" failover --kills "$FAILOVER_KILLS")"
  log "cluster: notices across a failover (proposals due while their member is dead)"
  record 1 "$("$BENCH" failover-notices --cases "$NOTICE_CASES")"
  rm -rf "$WORK/c1" "$WORK/c2" "$WORK/solo"
fi

# --- 9 a call through the clients vs a bare socket (issue 18) ------------------------------
if [[ " $ONLY " == *" client "* ]]; then
  log "client: GetCase through AfterSalesClient (blocking, async) and the Python client vs bare sockets; 50 callers on one client vs 50 DEALERs"
  start_daemon cl "$WORK/cl" --fsync everysec
  CASE_CL="$(json "$("$BENCH" prepare --endpoint "$RPC_cl")" case_id)"
  # The Python client's environment (.venv, as make python-client-test makes it).
  PY="$ROOT/.venv/bin/python"
  if make -s -C "$ROOT" "$ROOT/.venv/.aftersales-client-installed" python-client-gen >&2 && "$PY" -c 'import aftersales_client' 2>/dev/null; then
    PY_OK=1
  else
    PY_OK=0; log "client: no Python client environment (make python-client-test makes it): Python rows skipped"
  fi
  CL=(--endpoint "$RPC_cl" --case-id "$CASE_CL" --count $CLIENT_LAT_COUNT --seconds $CLIENT_LAT_SECONDS --warmup 500)
  # Short runs, many rounds: a run's figure depends on where the scheduler put its threads
  # (bimodal on this VM), so each variant gets a fresh process every round.
  for ((r = 1; r <= CLIENT_ROUNDS; r++)); do
    log "round $r/$CLIENT_ROUNDS: client latency"
    record $r "$("$BENCH" latency --target client-bare "${CL[@]}")"
    record $r "$("$BENCH" latency --target client-bare-typed --typed "${CL[@]}")"
    record $r "$("$BENCH" socket-latency --mode hop-task "${CL[@]}")"
    record $r "$("$BENCH" client-latency --form blocking "${CL[@]}")"
    record $r "$("$BENCH" client-latency --form async "${CL[@]}")"
    record $r "$("$BENCH" client-latency --form executor "${CL[@]}")"
    record $r "$("$BENCH" client-latency --form blocking --raw "${CL[@]}")"
    record $r "$("$BENCH" client-latency --form async --raw "${CL[@]}")"
    if [[ "$PY_OK" == 1 ]]; then
      for mode in bare typed client; do
        record $r "$("$PY" "$ROOT/bench/python_client_bench.py" --mode $mode "${CL[@]}")"
      done
    fi
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: client throughput (50 DEALERs, 50 async callers on one client)"
    record $r "$("$BENCH" throughput --endpoint "$RPC_cl" --label client-bare --connections 50 --inflight 1 --seconds $TP_SECONDS)"
    record $r "$("$BENCH" client-throughput --endpoint "$RPC_cl" --label client-async --callers 50 --seconds $TP_SECONDS)"
    record $r "$("$BENCH" client-throughput --endpoint "$RPC_cl" --label client-executor --form executor --callers 50 --seconds $TP_SECONDS)"
  done
  stop_named cl
  rm -rf "$WORK/cl"
fi

# --- 10 the alternatives a team would build (issue 17): Redis 7 + Lua, PostgreSQL 15 -------
if [[ " $ONLY " == *" peers "* ]]; then
  log "peers: CreateCase's work as a Redis Lua script (AOF everysec / always) and as one PostgreSQL transaction, vs aftersalesd; alternating rounds"
  start_daemon pes "$WORK/pes" --fsync everysec
  start_daemon pal "$WORK/pal" --fsync always
  # Redis + Lua: one server per fsync policy, configured as the row-2 Redis otherwise.
  for pol in everysec always; do
    port="$(free_port)"
    mkdir -p "$WORK/lua-$pol"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$WORK/lua-$pol" --save '' \
      --appendonly yes --appendfsync "$pol" --auto-aof-rewrite-percentage 0 \
      --daemonize no --logfile "$WORK/lua-$pol.log" &
    PID_OF[lua_$pol]=$!
    printf -v "LUA_PORT_$pol" '%s' "$port"
    for ((i = 0; i < 300; i++)); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    LUA_SHA="$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$ROOT/bench/peers/create_case.lua")")"
  done
  # The daemon bench's plain case (Cases.plain): signed, full refund-only, no signals →
  # AWAITING_MERCHANT_REVIEW. One __rand_int__ (the order id) makes each call a new order
  # line; the script counts the rare collisions of -r's random numbers (ALREADY_EXISTS).
  LUA_ARGS=(C-bench M-bench apparel REFUND_ONLY SIGNED 12900 12900 "the zip broke on first use" - - 0 0 0)
  proc_cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime + stime (clock ticks)
  lua_run() {  # lua_run POLICY ROUND N → one JSON line (redis-server's CPU per call over the whole run)
    local pol="$1" r="$2" n="$3" port before after out
    port="LUA_PORT_$pol"; port="${!port}"
    before="$(redis-cli -p "$port" GET stats:already_exists)"
    local cpu0 cpu1
    cpu0="$(proc_cpu_ticks "${PID_OF[lua_$pol]}")"
    # redis-benchmark's own CPU (the driver shares the 2 cores too), from its rusage.
    local driver_cpu="$WORK/redis-benchmark.cpu"
    out="$(python3 -c '
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(str(usage.ru_utime + usage.ru_stime))
sys.exit(done.returncode)' "$driver_cpu" redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -r 2000000000 --csv \
      EVALSHA "$LUA_SHA" 1 "ol:r$r-O-__rand_int__:1" "${LUA_ARGS[@]}" 2>/dev/null | redis_rps "lua-$pol")"
    cpu1="$(proc_cpu_ticks "${PID_OF[lua_$pol]}")"
    after="$(redis-cli -p "$port" GET stats:already_exists)"
    python3 -c '
import json, os, sys
d = json.loads(sys.argv[1]); n = int(sys.argv[2])
d.update(requests=n, already_exists=int(sys.argv[4] or 0) - int(sys.argv[3] or 0), cases=int(sys.argv[5] or 0),
         server_cpu_us_per_call=round((int(sys.argv[7]) - int(sys.argv[6])) * 1e6 / os.sysconf("SC_CLK_TCK") / n, 2),
         cpu_us_per_call=round(float(sys.argv[8]) * 1e6 / n, 2))
print(json.dumps(d))' "$out" "$n" "$before" "$after" "$(redis-cli -p "$port" GET next_case_id)" "$cpu0" "$cpu1" "$(cat "$driver_cpu")"
  }
  # redis-benchmark runs a count, not a time: each run's count is the last run's rate ×
  # the daemon's measured seconds, starting from an unmeasured calibration run.
  declare -A LUA_N=()
  for pol in everysec always; do
    LUA_N[$pol]="$(python3 -c 'import json,sys; print(max(2000, int(json.loads(sys.argv[1])["calls_per_s"] * float(sys.argv[2]))))' \
      "$(lua_run $pol 0 $((TP_SECONDS * 2000)))" "$TP_SECONDS")"
  done
  # PostgreSQL 15: its own throwaway server (fsync=on, synchronous_commit=on), the schema
  # and function of bench/peers/schema.sql, pgbench with bench/peers/create_case.sql.
  PG_BIN="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
  [[ -x "$PG_BIN/pgbench" ]] || PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  PEER_PG_DIR="$(mktemp -u /tmp/aftersales-bench-peerpg.XXXXXX)"
  PEER_PG_LINE="$("$ROOT/scripts/pg-throwaway" start --owner-pid $$ "$PEER_PG_DIR")"
  PEER_PG_URL="${PEER_PG_LINE%% *}"
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PEER_PG_URL" -f "$ROOT/bench/peers/schema.sql" 2>&1 | grep -v NOTICE >&2 || true
  # Autovacuum off on these insert-only tables, so that it does not wake up inside
  # another contender's measured seconds.
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PEER_PG_URL" \
    -c 'ALTER TABLE cases SET (autovacuum_enabled = off); ALTER TABLE history SET (autovacuum_enabled = off); ALTER TABLE outbox SET (autovacuum_enabled = off)' >&2
  PEER_PG_PID="$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' <<< "$PEER_PG_LINE")"
  # The server's CPU (clock ticks): the postmaster with its reaped children (the backends
  # of a finished run) plus its live children (walwriter, checkpointer, …).
  pg_cpu_ticks() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$PEER_PG_PID" '{
      pid = $1; rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " ")
      if (pid == pm) t += f[12] + f[13] + f[14] + f[15]; else if (f[2] == pm) t += f[12] + f[13]
    } END { print t + 0 }'
  }
  pg_run() {  # pg_run ROUND SECONDS → one JSON line (the server's CPU per transaction over the whole run)
    local cpu0 cpu1 out
    cpu0="$(pg_cpu_ticks)"
    out="$("$PG_BIN/pgbench" -n -c 50 -j 2 -T "$2" -M prepared -D run="$1" -D n=0 -f "$ROOT/bench/peers/create_case.sql" "$PEER_PG_URL" 2>&1 \
      | python3 -c '
import json, re, sys
t = sys.stdin.read()
g = lambda p: (re.search(p, t) or [None, None])[1]
tps, lat, failed = g(r"tps = ([0-9.]+) \(without"), g(r"latency average = ([0-9.]+) ms"), g(r"failed transactions: ([0-9]+)")
if tps is None: sys.exit("pgbench: " + t[-2000:])
print(json.dumps({"bench": "throughput", "label": "pg-tx", "calls_per_s": float(tps),
                  "call_avg_us": round(float(lat) * 1000, 1) if lat else None, "failed": int(failed or 0),
                  "processed": int(g(r"actually processed: ([0-9]+)") or 0)}))')"
    sleep 0.2  # the postmaster reaps the run's backends
    cpu1="$(pg_cpu_ticks)"
    python3 -c '
import json, os, sys
d = json.loads(sys.argv[1])
d["server_cpu_us_per_call"] = round((int(sys.argv[3]) - int(sys.argv[2])) * 1e6 / os.sysconf("SC_CLK_TCK") / max(1, d["processed"]), 2)
print(json.dumps(d))' "$out" "$cpu0" "$cpu1"
  }
  pg_run 0 1 >/dev/null  # warm-up: connections, plans, the first pages
  TPD=(--raw-zmtp --connections 50 --inflight 1 --seconds $TP_SECONDS)
  for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: peers (daemon everysec, Redis+Lua everysec, daemon always, Redis+Lua always, PostgreSQL)"
    record $r "$("$BENCH" throughput --endpoint "$RPC_pes" --label peers-everysec --server-pid "${PID_OF[pes]}" "${TPD[@]}")"
    record $r "$("$BENCH" throughput --endpoint "$RPC_pes" --label peers-everysec-create --create-only --server-pid "${PID_OF[pes]}" "${TPD[@]}")"
    out="$(lua_run everysec $r "${LUA_N[everysec]}")"; record $r "$out"
    LUA_N[everysec]="$(json "$out" calls_per_s | python3 -c "import sys; print(max(2000, int(float(sys.stdin.read()) * $TP_SECONDS)))")"
    record $r "$("$BENCH" throughput --endpoint "$RPC_pal" --label peers-always --server-pid "${PID_OF[pal]}" "${TPD[@]}")"
    record $r "$("$BENCH" throughput --endpoint "$RPC_pal" --label peers-always-create --create-only --server-pid "${PID_OF[pal]}" "${TPD[@]}")"
    # The same with 16 calls in flight per caller: what the daemon does when round trips
    # do not bound it (its loop's busy share is in the notes).
    record $r "$("$BENCH" throughput --endpoint "$RPC_pal" --label peers-always-create-p16 --create-only --server-pid "${PID_OF[pal]}" \
      --raw-zmtp --connections 50 --inflight 16 --seconds $TP_SECONDS)"
    out="$(lua_run always $r "${LUA_N[always]}")"; record $r "$out"
    LUA_N[always]="$(json "$out" calls_per_s | python3 -c "import sys; print(max(2000, int(float(sys.stdin.read()) * $TP_SECONDS)))")"
    record $r "$(pg_run $r $TP_SECONDS)"
  done
  stop_named pes; stop_named pal; stop_named lua_everysec 30; stop_named lua_always 30
  "$ROOT/scripts/pg-throwaway" stop "$PEER_PG_DIR" >&2
  rm -rf "$PEER_PG_DIR" "$WORK/pes" "$WORK/pal" "$WORK/lua-everysec" "$WORK/lua-always"
fi

# --- 5 refused calls ----------------------------------------------------------------------
if [[ " $ONLY " == *" refused "* ]]; then
  log "refused: hostile calls (huge lists, maps) against a Ping"
  start_daemon refused "$WORK/refused" --fsync everysec
  "$BENCH" refused --endpoint "$RPC_refused" --count 20 | while read -r line; do record 1 "$line"; done
  stop_named refused 30
  rm -rf "$WORK/refused"
fi

stop_named redis 30
ELAPSED=$((SECONDS - T0))

# --- the table ------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
MACHINE="$(printf 'nproc=%s; cpu=%s; mem=%s; kernel=%s; swift=%s; libzmq=%s; redis=%s; date=%s; runtime=%ss; quick=%s; rounds=%s' \
  "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
  "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)" "$(uname -sr)" \
  "$(swift --version 2>/dev/null | head -1 | sed 's/.*Swift version \([^ ]*\).*/\1/')" \
  "$(pkg-config --modversion libzmq)" "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')" \
  "$STARTED_AT" "$ELAPSED" "$QUICK" "$ROUNDS")"
OUT="$RESULTS_DIR/latest.md"
[[ "$QUICK" == 1 ]] && OUT="$RESULTS_DIR/latest-quick.md"
python3 "$ROOT/bench/report.py" "$RESULTS" "$MACHINE" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cp "$RESULTS" "${OUT%.md}.jsonl"
cat "$OUT"
log "written to ${OUT#$ROOT/} (raw figures: ${OUT#$ROOT/} → ${OUT%.md}.jsonl)"
