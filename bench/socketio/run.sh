#!/usr/bin/env bash
# run.sh measures the fan-out of pushd's Socket.IO endpoint against a Node
# socket.io 4.8 broadcast server (server.mjs) in one sitting, both driven by
# the same fanout.mjs: real socket.io-client connections over WebSocket, all
# subscribed to one topic with emit("subscribe", …, ack), and one sequential
# HTTP publisher. Each server is started fresh; its CPU time is read from
# /proc around every step. It prints a Markdown table with ratios and keeps
# the JSON results.
#
# Environment:
#   SUBS            subscribers (default 5000; BENCH_QUICK=1: 500)
#   RATES, COUNTS   messages per second and messages per step
#                   (default 10,500 and 200,200: a steady rate and a burst)
#   WORKERS         client processes (default 2)
#   BENCH_RESULTS   directory for the JSON results (default: a new temp dir)
#   PUSHD_FLAGS     extra flags for pushd (default none)
#
# Needs: Linux, Go, Node 20 or later, npm (installs the pinned packages of
# this folder on first use). Not part of the test run. On a shared 2-core
# machine keep SUBS small unless the machine is quiet: the clients compete
# with the server for the same cores, the same way for both servers.
set -euo pipefail

cd "$(dirname "$0")"
here=$(pwd)
repo=$(cd ../.. && pwd)
subs=${SUBS:-5000} rates=${RATES:-10,500} counts=${COUNTS:-200,200} workers=${WORKERS:-2}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	subs=${SUBS:-500}
fi
results=${BENCH_RESULTS:-$(mktemp -d /tmp/pushd-bench-sio.XXXXXX)}
mkdir -p "$results"
bin=$(mktemp -d /tmp/pushd-bench-sio-bin.XXXXXX)
server_pid=""
cleanup() {
	if [[ -n $server_pid ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -d node_modules/socket.io || ! -d node_modules/socket.io-client ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
echo "run.sh: building pushd into $bin; results in $results" >&2
(cd "$repo" && go build -o "$bin/pushd" ./cmd/pushd)

# The clients need one file descriptor each, in two processes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# wait_ready URL: polls until it answers 200, for at most 20 s.
wait_ready() {
	for _ in $(seq 200); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		if ! kill -0 "$server_pid" 2>/dev/null; then echo "run.sh: the server exited" >&2; return 1; fi
		sleep 0.1
	done
	echo "run.sh: $1 not ready in 20 s" >&2
	return 1
}

# measure LABEL PORT APIPORT: runs fanout.mjs against the running server.
measure() {
	node "$here/fanout.mjs" --url "http://127.0.0.1:$2" --publish "http://127.0.0.1:$3/v1/publish" \
		--server-pid "$server_pid" --subs "$subs" --workers "$workers" --rate "$rates" --messages "$counts" \
		--label "$1" --out "$results/$1.json"
}

stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

# shellcheck disable=SC2086 # PUSHD_FLAGS is a list of flags
"$bin/pushd" --listen 127.0.0.1:18080 --api-listen 127.0.0.1:18081 --nats-listen 127.0.0.1:0 \
	--log-level warn --insecure --max-conns-per-ip 0 ${PUSHD_FLAGS:-} &
server_pid=$!
wait_ready http://127.0.0.1:18081/readyz
measure pushd 18080 18081
stop_server

PORT=18090 API_PORT=18091 node "$here/server.mjs" >/dev/null &
server_pid=$!
wait_ready http://127.0.0.1:18091/readyz
measure socket.io 18090 18091
stop_server

echo
echo "Socket.IO fan-out, $(date -u +%Y-%m-%d), $(nproc) cores, node $(node --version), $(cd "$repo" && go version | cut -d' ' -f3)"
echo "Command: SUBS=$subs RATES=$rates COUNTS=$counts WORKERS=$workers bench/socketio/run.sh"
echo
node "$here/fanout.mjs" report "$results/pushd.json" "$results/socket.io.json"
