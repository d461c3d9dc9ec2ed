#!/usr/bin/env bash
# c-client-test: start a real aftersalesd on free loopback ports, run the C client against
# it and check what it printed and how it exited, then stop the daemon (SIGTERM → exit 0).
# Then the same over CURVE: a second daemon with keys from `aftersalesd keygen` and a
# clients file; a listed key gets answers, an unlisted one gets none.
#
# Usage: run-test.sh AFTERSALESD CLIENT_BINARY
set -u

daemon_bin=${1:?usage: run-test.sh AFTERSALESD CLIENT_BINARY}
client_bin=${2:?usage: run-test.sh AFTERSALESD CLIENT_BINARY}
passed=0
failed=0
pass() { echo "ok   - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }

if [ ! -x "$daemon_bin" ]; then
    echo "c-client-test: AFTERSALESD=$daemon_bin is not an executable file; build the daemon first" >&2
    exit 1
fi
if [ ! -x "$client_bin" ]; then
    echo "c-client-test: $client_bin is missing; run make c-client" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/aftersales-c-test.XXXXXX")
daemon_pid=
drain_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    [ -n "$drain_pid" ] && wait "$drain_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# start_daemon NAME [EXTRA_FLAG…]: start aftersalesd on free loopback ports with data dir
# and logs under $work/NAME*, wait for its ready line; sets daemon_pid and rpc. Returns 1
# (after showing its stderr) when no ready line comes within 30 s.
start_daemon() {
    local name=$1 ready=
    shift
    mkfifo "$work/$name.stdout"
    "$daemon_bin" --rpc 'tcp://127.0.0.1:*' --pub 'tcp://127.0.0.1:*' --data-dir "$work/$name.data" \
        --fsync everysec --proposal-ttl 300ms "$@" \
        >"$work/$name.stdout" 2>"$work/$name.stderr" </dev/null &
    daemon_pid=$!
    exec 3<"$work/$name.stdout"
    if IFS= read -r -t 30 ready <&3; then :; fi
    # Keep draining the daemon's stdout so it can never block on the pipe.
    cat <&3 >"$work/$name.stdout.rest" &
    drain_pid=$!
    exec 3<&-
    if [[ ! "$ready" =~ ^aftersalesd\ ready\ rpc=([^ ]+)\ pub=([^ ]+)$ ]]; then
        echo "c-client-test: no ready line from aftersalesd ($name) within 30 s (got: '$ready')" >&2
        echo "--- daemon stderr:" >&2; tail -n 40 "$work/$name.stderr" >&2
        return 1
    fi
    rpc=${BASH_REMATCH[1]}
    echo "daemon ($name) ready: rpc=$rpc"
}

# stop_daemon NAME: SIGTERM the daemon start_daemon started and check it exits 0 (it is
# killed after 10 s).
stop_daemon() {
    local name=$1 watchdog drc
    kill -TERM "$daemon_pid"
    ( sleep 10; kill -KILL "$daemon_pid" 2>/dev/null ) &
    watchdog=$!
    wait "$daemon_pid"
    drc=$?
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    wait "$drain_pid" 2>/dev/null
    if [ "$drc" -eq 0 ]; then
        pass "daemon ($name) exited 0 on SIGTERM"
    else
        fail "daemon ($name) exit code $drc after SIGTERM (want 0; 137 = killed after 10 s)"
        echo "--- daemon stderr:"; tail -n 40 "$work/$name.stderr"
    fi
    daemon_pid= drain_pid=
}

start_daemon plain || exit 1

order="c-test-order-$$-$(date +%s)"
timeout 30 "$client_bin" "$rpc" "$order" >"$work/out" 2>"$work/err"
rc=$?
echo "--- aftersales-c-client $rpc $order (exit $rc)"
cat "$work/out"
[ -s "$work/err" ] && { echo "--- its stderr:"; cat "$work/err"; }
echo "---"

if [ "$rc" -eq 0 ]; then pass "client exit code 0"; else fail "client exit code $rc (want 0)"; fi

created_id=$(sed -n 's/^created case_id=\([^ ]*\) .*/\1/p' "$work/out")
# The case block printed from GetCase: its case_id and order_id lines.
printed_id=$(sed -n '/^case {/,/^}/s/^  case_id: "\(.*\)"$/\1/p' "$work/out")
printed_order=$(sed -n '/^case {/,/^}/s/^  order_id: "\(.*\)"$/\1/p' "$work/out")
printed_consumer=$(sed -n '/^case {/,/^}/s/^  consumer_id: "\(.*\)"$/\1/p' "$work/out")
printed_merchant=$(sed -n '/^case {/,/^}/s/^  merchant_id: "\(.*\)"$/\1/p' "$work/out")
if [ -n "$created_id" ] && [ "$printed_id" = "$created_id" ]; then
    pass "printed case has the created case_id ($created_id)"
else
    fail "printed case_id '$printed_id' != created case_id '$created_id'"
fi
if [ "$printed_order" = "$order" ] && [ "$printed_consumer" = "c-consumer-1" ] &&
   [ "$printed_merchant" = "c-merchant-1" ]; then
    pass "printed case has the order, consumer and merchant ids sent"
else
    fail "printed ids order='$printed_order' consumer='$printed_consumer' merchant='$printed_merchant'"
fi

# Failure path: a second case for the same order line is ALREADY_EXISTS (6) → exit 16.
timeout 30 "$client_bin" "$rpc" "$order" >"$work/out2" 2>"$work/err2"
rc2=$?
if [ "$rc2" -eq 16 ] && grep -q 'ALREADY_EXISTS' "$work/err2"; then
    pass "second case for the same order line exits 16 (10 + ALREADY_EXISTS)"
else
    fail "second case for the same order line exited $rc2 (want 16): $(cat "$work/err2")"
fi

stop_daemon plain

# --- CURVE ---------------------------------------------------------------------------------
# Keys from the daemon's own keygen; the clients file lists c-gateway (scoped to the
# consumer the client creates cases for) but not "stranger", whose key is just as valid.
keys=$work/keys
for name in daemon c-gateway stranger; do
    "$daemon_bin" keygen --out "$keys" "$name" >/dev/null ||
        { echo "c-client-test: aftersalesd keygen $name failed" >&2; exit 1; }
done
IFS= read -r gateway_pub <"$keys/c-gateway.pub"
printf '# NAME ROLE PUBLIC_KEY [SCOPE…]\nc-gateway consumer-gateway %s consumers=c-consumer-1\n' \
    "$gateway_pub" >"$work/clients"

if start_daemon curve --curve-secret-key "$keys/daemon.key" --clients "$work/clients"; then
    order="c-test-curve-$$-$(date +%s)"
    timeout 30 "$client_bin" --server-key "$keys/daemon.pub" --key "$keys/c-gateway.key" \
        "$rpc" "$order" >"$work/curve.out" 2>"$work/curve.err"
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "^created case_id=.* order_id=$order " "$work/curve.out"; then
        pass "CURVE with a listed key: exit 0, case created"
    else
        fail "CURVE with a listed key exited $rc (want 0): $(cat "$work/curve.err")"
    fi

    # ZAP refuses an unlisted key, so the daemon never answers: the client's timeout (3).
    timeout 30 "$client_bin" --server-key "$keys/daemon.pub" --key "$keys/stranger.key" \
        "$rpc" "$order-stranger" >"$work/stranger.out" 2>"$work/stranger.err"
    rc=$?
    if [ "$rc" -eq 3 ] && grep -q 'no answer' "$work/stranger.err"; then
        pass "CURVE with a key not in the clients file: no answer, exit 3"
    else
        fail "CURVE with a key not in the clients file exited $rc (want 3): $(cat "$work/stranger.err")"
    fi

    stop_daemon curve
else
    fail "CURVE daemon did not start"
fi

# A missing key file is refused before any connection, naming the file.
timeout 30 "$client_bin" --server-key "$keys/daemon.pub" --key "$keys/missing.key" \
    tcp://127.0.0.1:1 >/dev/null 2>"$work/missing.err"
rc=$?
if [ "$rc" -eq 7 ] && grep -q 'missing.key' "$work/missing.err"; then
    pass "a missing --key file exits 7 and names it"
else
    fail "a missing --key file exited $rc (want 7): $(cat "$work/missing.err")"
fi

echo "c-client-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
