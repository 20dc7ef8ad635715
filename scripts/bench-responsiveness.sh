#!/usr/bin/env bash
# bench-responsiveness.sh measures how quickly pushd's event loop serves
# other work while it fans out: 5,000 subscribers on one topic get RATE
# msg/s (default 10: at one write per socket each message holds the loop
# for ~25 ms of writes) from one HTTP publisher, and meanwhile
# "loadtest probe" GETs /pushd.js from the WebSocket port, which the same
# loop serves, every 5 ms for 10 s. Prints the probe's percentiles and the
# fan-out's own latency and CPU per delivery for each binary, alternating
# ROUNDS times so that drift in the machine's speed hits every binary.
#
#   scripts/bench-responsiveness.sh                     # the working tree's pushd
#   scripts/bench-responsiveness.sh /tmp/old /tmp/new   # two builds, before/after
#
# Environment: RATE (10), ROUNDS (2), PUSHD_FLAGS (extra flags). About 40 s
# per binary per round. Needs Linux, Go, curl; loopback ports 18080, 18081,
# 14222 free.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${RATE:-10}
rounds=${ROUNDS:-2}
tmp=$(mktemp -d /tmp/pushd-resp.XXXXXX)
pid=""
cleanup() {
	if [[ -n $pid ]]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/loadtest" ./loadtest
bins=("$@")
if [[ ${#bins[@]} -eq 0 ]]; then
	go build -o "$tmp/pushd" ./cmd/pushd
	bins=("$tmp/pushd")
fi

for ((r = 1; r <= rounds; r++)); do
	for bin in "${bins[@]}"; do
		# shellcheck disable=SC2086 # PUSHD_FLAGS is a list of flags
		"$bin" -listen 127.0.0.1:18080 -api-listen 127.0.0.1:18081 -nats-listen 127.0.0.1:14222 \
			-log-level warn -insecure -max-conns-per-ip 0 ${PUSHD_FLAGS:-} >"$tmp/pushd.log" 2>&1 &
		pid=$!
		for _ in $(seq 100); do
			curl -fs -o /dev/null http://127.0.0.1:18081/readyz && break
			sleep 0.1
		done
		"$tmp/loadtest" fanout --url 'ws://127.0.0.1:18080/ws?topics={{topic}}' \
			--publish-url http://127.0.0.1:18081/v1/publish --server-pid "$pid" \
			--conns 5000 --rate "$rate" --messages $((rate * 20)) --size 100 --quiet >"$tmp/fanout.txt" 2>&1 &
		lt=$!
		sleep 8 # connected and fanning out
		probe=$("$tmp/loadtest" probe --url http://127.0.0.1:18080/pushd.js --for 10s --every 5ms)
		wait "$lt"
		fan=$(grep -E '^ +latency' "$tmp/fanout.txt" | head -n1 | sed 's/^ *//')
		cpu=$(grep -oE '[0-9.]+ server-cpu-ns/delivery' "$tmp/fanout.txt" | head -n1)
		echo "round $r $(basename "$bin"): $probe"
		echo "    fan-out $rate msg/s: $fan; $cpu"
		kill -INT "$pid"
		wait "$pid" 2>/dev/null || true
		pid=""
		sleep 1
	done
done
