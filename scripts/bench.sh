#!/usr/bin/env bash
# bench.sh runs the standard comparison of pushd against the baseline
# (bench/refhub, a conventional gorilla/websocket hub) with the loadtest
# harness, and writes the results table, with ratios, into
# docs/benchmarks.md between the "bench.sh" marker comments. Everything
# else in that file is left alone.
#
# The comparison, each scenario on a freshly started server:
#   idle    ~19,000 connections held across a 25 s ping interval: RSS per connection
#   fanout  5,000 subscribers at 10 and 50 msg/s, a 200-message burst asked
#           at 500 msg/s, and higher rates to find the sustainable maximum
#   churn   500 connections/s living 1 s each, then a reconnect storm of 2,000
#
# Then scripts/bench-floor.sh adds its own section: pushd with its default
# flags against bench/floor (one write(2) per delivery) and the hub, at
# 10 and 50 msg/s and the 200-message burst (BENCH_FLOOR=0 skips it).
#
# Environment:
#   BENCH_OUT      file to write (default docs/benchmarks.md)
#   BENCH_RESULTS  directory for the JSON, HTML and log files (default: a new temp dir)
#   BENCH_QUICK=1  small sizes, to check the script itself in a minute
#   PUSHD_FLAGS    extra flags for pushd (e.g. "-memory-limit 40000000")
#   PUSHD_LOOPS    event-loop counts to measure fan-out with (default "1 2";
#                  the first is the one compared in the main table)
#
# Needs: Linux, Go. Run as root to widen the ephemeral port range.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${BENCH_OUT:-docs/benchmarks.md}
results=${BENCH_RESULTS:-$(mktemp -d /tmp/pushd-bench.XXXXXX)}
mkdir -p "$results"
read -r -a loops <<<"${PUSHD_LOOPS:-1 2}"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	idle_conns=2000 hold=3s subs=500 churn_duration=2s storm=200
	rates=10,50,500 messages=20,50,100
else
	idle_conns=19000 hold=35s subs=5000 churn_duration=10s storm=2000
	rates=10,50,500,1000,2000 messages=200,500,200,1000,2000
fi

bin=$(mktemp -d /tmp/pushd-bench-bin.XXXXXX)
server_pid=""
cleanup() {
	if [[ -n $server_pid ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$bin"
}
trap cleanup EXIT

echo "bench.sh: building into $bin; results in $results" >&2
go build -o "$bin/pushd" ./cmd/pushd
go build -o "$bin/refhub" ./bench/refhub
go build -o "$bin/loadtest" ./loadtest

# ~19,000 connections from 8 source addresses fit the default port range,
# but churn leaves TIME_WAIT sockets behind; a wider range costs nothing.
if [[ $(id -u) == 0 ]]; then
	sysctl -qw net.ipv4.ip_local_port_range="1024 65000" || true
fi

# start_server NAME [LOOPS]: starts pushd or refhub in the background and
# waits until it is ready. Sets server_pid, ws_url, publish_url, metrics.
start_server() {
	local name=$1 n=${2:-1} ready
	case $name in
	pushd)
		# All load comes from a few loopback addresses, so the per-IP cap is lifted.
		# shellcheck disable=SC2086 # PUSHD_FLAGS is a list of flags
		"$bin/pushd" -listen 127.0.0.1:8080 -api-listen 127.0.0.1:8081 -nats-listen 127.0.0.1:4222 \
			-loops "$n" -log-level warn -max-conns-per-ip 0 -insecure ${PUSHD_FLAGS:-} >>"$results/pushd.log" 2>&1 &
		ws_url="ws://127.0.0.1:8080/ws?topics={{topic}}"
		publish_url=http://127.0.0.1:8081/v1/publish
		ready=http://127.0.0.1:8081/readyz
		metrics=(--metrics http://127.0.0.1:8081/metrics)
		;;
	refhub)
		"$bin/refhub" -addr 127.0.0.1:8090 -api-addr 127.0.0.1:8091 >>"$results/refhub.log" 2>&1 &
		ws_url="ws://127.0.0.1:8090/ws?topics={{topic}}"
		publish_url=http://127.0.0.1:8091/v1/publish
		ready=http://127.0.0.1:8091/readyz
		metrics=()
		;;
	esac
	server_pid=$!
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$ready" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench.sh: $name did not become ready" >&2
	exit 1
}

stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=""
	sleep 1 # let the kernel retire the sockets before the next server binds
}

commands=()
# measure LABEL SERVER LOOPS SCENARIO [FLAGS...]: one scenario on a fresh server.
measure() {
	local label=$1 server=$2 n=$3 scenario=$4
	shift 4
	start_server "$server" "$n"
	local args=("$scenario" --label "$label" --url "$ws_url" --publish-url "$publish_url"
		--server-pid "$server_pid" "${metrics[@]}" --quiet
		--json-out "$results/$label-$scenario.json" --html "$results/$label-$scenario.html" "$@")
	local quoted="" a
	for a in "${args[@]}"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
			quoted+=" $a"
		else
			quoted+=" '${a//\'/\'\\\'\'}'"
		fi
	done
	commands+=("loadtest$quoted")
	echo "bench.sh: loadtest$quoted" >&2
	"$bin/loadtest" "${args[@]}" | tee -a "$results/summary.txt"
	stop_server
}

for target in refhub pushd; do
	n=${loops[0]}
	label=$target
	measure "$label" "$target" "$n" idle --conns "$idle_conns" --hold "$hold"
	measure "$label" "$target" "$n" fanout --conns "$subs" --rate "$rates" --messages "$messages" --size 100
	measure "$label" "$target" "$n" churn --rate 500 --duration "$churn_duration" --lifetime 1s --storm "$storm"
done
for n in "${loops[@]:1}"; do
	measure "pushd-loops$n" pushd "$n" fanout --conns "$subs" --rate "$rates" --messages "$messages" --size 100
done

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
section=$(mktemp)
{
	echo "<!-- bench.sh:begin (generated by scripts/bench.sh; edits inside these markers are overwritten) -->"
	echo "## Standard comparison (scripts/bench.sh)"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), $(go env GOVERSION); harness and servers share the machine"
	echo "- pushd: \`pushd -listen 127.0.0.1:8080 -api-listen 127.0.0.1:8081 -nats-listen 127.0.0.1:4222 -loops ${loops[0]} -log-level warn ${PUSHD_FLAGS:-}\`"
	echo "- Baseline: \`refhub -addr 127.0.0.1:8090 -api-addr 127.0.0.1:8091\` (bench/refhub: a conventional gorilla/websocket hub, not part of pushd)"
	[[ ${BENCH_QUICK:-0} == 1 ]] && echo "- **Quick mode (BENCH_QUICK=1): reduced sizes, not the standard comparison.**"
	echo
	"$bin/loadtest" compare --product pushd --baseline refhub "$results"/refhub-*.json "$results"/pushd-*.json
	for n in "${loops[@]:1}"; do
		echo
		echo "Fan-out with pushd on $n event loops (\`-loops $n\`) against the same baseline run:"
		echo
		"$bin/loadtest" compare --product "pushd-loops$n" --baseline refhub "$results/refhub-fanout.json" "$results/pushd-loops$n-fanout.json"
	done
	echo
	echo "Ratios are pushd ÷ baseline. Commands (each on a freshly started server):"
	echo
	echo '```'
	printf '%s\n' "${commands[@]}"
	echo '```'
	echo "<!-- bench.sh:end -->"
} >"$section"

# Splice the section into $out between the markers, or append it.
if [[ ! -f $out ]]; then
	mkdir -p "$(dirname "$out")"
	printf '# Benchmarks\n\n' >"$out"
fi
if grep -q '<!-- bench.sh:begin' "$out"; then
	awk -v sec="$section" '
		/<!-- bench.sh:begin/ { while ((getline line < sec) > 0) print line; skip = 1; next }
		/<!-- bench.sh:end -->/ { skip = 0; next }
		!skip { print }
	' "$out" >"$out.tmp"
	mv "$out.tmp" "$out"
else
	{ echo; cat "$section"; } >>"$out"
fi
rm -f "$section"
echo "bench.sh: wrote $out (raw results in $results)" >&2

if [[ ${BENCH_FLOOR:-1} == 1 ]]; then
	# pushd's default flags are the point of that comparison: PUSHD_FLAGS
	# is not passed on.
	PUSHD_FLAGS="" BENCH_OUT=$out BENCH_RESULTS=$results/floor scripts/bench-floor.sh
fi
