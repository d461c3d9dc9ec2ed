#!/usr/bin/env bash
# c-client-test: start a real aftersalesd on free loopback ports, run the C client against
# it and check what it printed and how it exited, then stop the daemon (SIGTERM → exit 0).
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
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/stdout"
"$daemon_bin" --rpc 'tcp://127.0.0.1:*' --pub 'tcp://127.0.0.1:*' --data-dir "$work/data" \
    --fsync everysec --proposal-ttl 300ms >"$work/stdout" 2>"$work/stderr" </dev/null &
daemon_pid=$!
exec 3<"$work/stdout"

ready=
if IFS= read -r -t 30 ready <&3; then :; fi
# Keep draining the daemon's stdout so it can never block on the pipe.
cat <&3 >"$work/stdout.rest" &
exec 3<&-
if [[ ! "$ready" =~ ^aftersalesd\ ready\ rpc=([^ ]+)\ pub=([^ ]+)$ ]]; then
    echo "c-client-test: no ready line from aftersalesd within 30 s (got: '$ready')" >&2
    echo "--- daemon stderr:" >&2; tail -n 40 "$work/stderr" >&2
    exit 1
fi
rpc=${BASH_REMATCH[1]}
echo "daemon ready: rpc=$rpc"

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

kill -TERM "$daemon_pid"
( sleep 10; kill -KILL "$daemon_pid" 2>/dev/null ) &
watchdog=$!
wait "$daemon_pid"
drc=$?
kill "$watchdog" 2>/dev/null
wait "$watchdog" 2>/dev/null
if [ "$drc" -eq 0 ]; then
    pass "daemon exited 0 on SIGTERM"
else
    fail "daemon exit code $drc after SIGTERM (want 0; 137 = killed after 10 s)"
    echo "--- daemon stderr:"; tail -n 40 "$work/stderr"
fi
daemon_pid=

echo "c-client-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
