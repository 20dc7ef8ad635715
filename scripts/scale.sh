#!/usr/bin/env bash
# scale.sh holds a large number of idle, subscribed, ping-answering
# WebSocket connections on one box through one heartbeat cycle and reports
# what they cost: pushd's RSS per connection (summed over its processes) and
# the whole box's memory per connection, kernel included.
#
# A process may hold at most 20,000 open files here, so the connections are
# spread over N = ceil(conns / 19,000) pushd processes sharing one NATS: the
# first pushd runs the embedded NATS server on 127.0.0.1, the others connect
# to it with -nats. One loadtest "idle" process per pushd holds that pushd's
# share of the connections (one in-process worker of at most 19,000 sockets,
# spread over source addresses 127.0.0.2, 127.0.0.3, …), each connection
# subscribed to one of the topics through ?topics= and answering pings.
#
# The sequence, each wait bounded:
#   1. start the pushd processes (short ping interval) and wait until ready;
#   2. sample /proc/meminfo and the pushds' RSS ("before");
#   3. start the loadtest processes and wait until pushd reports every
#      connection open (or the connect budget runs out, or growth stalls);
#   4. wait one ping interval plus the pong timeout: every connection has
#      then been idle for a full interval, so pushd has pinged it, and had
#      time to close any that did not answer; check that none was closed;
#   5. sample again ("during"), stop the harness, stop pushd, report.
# Everything it started is stopped on exit, Ctrl-C included.
#
# Environment (defaults in brackets):
#   SCALE_CONNS         connections to hold [1000000]
#   SCALE_PER_PUSHD     most connections per pushd process [19000]
#   SCALE_PING          pushd's ping interval in seconds [25, pushd's default]
#   SCALE_PONG          pushd's pong timeout in seconds [10, pushd's default]
#   SCALE_TOPICS        topics the connections spread over [100]
#   SCALE_SOURCE_ADDRS  source addresses per harness process [8]
#   SCALE_CONNECT_BUDGET  seconds allowed for connecting [60 + conns/2000]
#   SCALE_PORT_BASE     pushd i listens on BASE+i (WebSocket), BASE+1000+i (API),
#                       NATS on BASE+2000 [15000]
#   SCALE_RESULTS       directory for logs, JSON and the report [new temp dir]
#   PUSHD_FLAGS         extra flags for every pushd
#
# Needs: Linux, Go, curl. The machine should be quiet: at a million
# connections the box holds two million sockets (fs.file-max must allow it)
# and several GB of kernel memory.
set -euo pipefail

cd "$(dirname "$0")/.."
conns=${SCALE_CONNS:-1000000}
per=${SCALE_PER_PUSHD:-19000}
ping=${SCALE_PING:-25}
pong=${SCALE_PONG:-10}
topics=${SCALE_TOPICS:-100}
srcs=${SCALE_SOURCE_ADDRS:-8}
budget=${SCALE_CONNECT_BUDGET:-$((60 + conns / 2000))}
port_base=${SCALE_PORT_BASE:-15000}
results=${SCALE_RESULTS:-$(mktemp -d /tmp/pushd-scale.XXXXXX)}
mkdir -p "$results"

if ((per > 19000)); then
	echo "scale.sh: SCALE_PER_PUSHD over 19000 would not fit a 20,000-file process" >&2
	exit 1
fi
n=$(((conns + per - 1) / per))
nats_port=$((port_base + 2000))
# The harness holds its connections until it is told to stop; this is only
# the backstop if this script dies without stopping it.
hold=$((budget + 2 * ping + pong + 120))

bin=$(mktemp -d /tmp/pushd-scale-bin.XXXXXX)
pushd_pids=()
lt_pids=()

# stop_pids SIGNAL TIMEOUT PID...: signals the processes, waits up to
# TIMEOUT seconds for them to exit, then kills what is left.
stop_pids() {
	local sig=$1 timeout=$2 p
	shift 2
	(($# == 0)) && return 0
	kill "-$sig" "$@" 2>/dev/null || true
	for _ in $(seq $((timeout * 10))); do
		local alive=0
		for p in "$@"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null || true
	for p in "$@"; do
		wait "$p" 2>/dev/null || true
	done
}

# harness_pids prints the loadtest processes and their worker children.
harness_pids() {
	local p
	for p in "${lt_pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			echo "$p"
			pgrep -P "$p" || true
		fi
	done
}

cleanup() {
	trap - EXIT INT TERM
	[[ -n ${pause_pid:-} ]] && kill "$pause_pid" 2>/dev/null
	local workers
	workers=$(harness_pids | sort -u | tr '\n' ' ')
	# shellcheck disable=SC2086 # a list of PIDs
	stop_pids TERM 30 ${workers}
	stop_pids TERM 15 "${pushd_pids[@]}"
	rm -rf "$bin"
}
trap cleanup EXIT
trap 'echo "scale.sh: interrupted" >&2; exit 130' INT TERM

log() { echo "scale.sh: $*" >&2; }
# pause SECONDS: a sleep that a signal interrupts at once (bash runs a trap
# only after a foreground command ends, but wait returns on a signal).
pause_pid=""
pause() {
	sleep "$1" &
	pause_pid=$!
	wait "$pause_pid" || true
	pause_pid=""
}

meminfo() { awk -v k="$1:" '$1 == k { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }
rss() { awk '/^VmRSS:/ { printf "%.0f\n", $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
sum_rss() {
	local total=0 p
	for p in "$@"; do
		total=$((total + $(rss "$p")))
	done
	echo "$total"
}
# metric NAME: the sum of a pushd metric (all its samples) over the processes.
metric() {
	local total=0 i v
	for ((i = 0; i < n; i++)); do
		v=$(curl -fsS --max-time 5 "http://127.0.0.1:$((port_base + 1000 + i))/metrics" 2>/dev/null |
			awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d", s }') || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
# slab_snapshot FILE: bytes in active objects of each slab cache (root only;
# an empty file otherwise).
slab_snapshot() {
	awk 'NR > 2 { printf "%s %.0f\n", $1, $2 * $4 }' /proc/slabinfo >"$1" 2>/dev/null || : >"$1"
}

# heartbeat_closes: connections pushd closed for a missing pong.
heartbeat_closes() {
	local total=0 i v
	for ((i = 0; i < n; i++)); do
		v=$(curl -fsS --max-time 5 "http://127.0.0.1:$((port_base + 1000 + i))/metrics" 2>/dev/null |
			awk '/^pushd_closes_total\{.*reason="heartbeat_timeout"/ { s += $NF } END { printf "%d", s }') || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

log "$conns connections over $n pushd process(es); results in $results"
go build -o "$bin/pushd" ./cmd/pushd
go build -o "$bin/loadtest" ./loadtest

for ((i = 0; i < n; i++)); do
	if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((port_base + 1000 + i))/readyz" 2>/dev/null; then
		log "port $((port_base + 1000 + i)) already answers: another run? (set SCALE_PORT_BASE)"
		exit 1
	fi
done

mem0_used=$(($(meminfo MemTotal) - $(meminfo MemAvailable)))

# 1. pushd processes. The per-IP cap is lifted: all load comes from a few
# loopback addresses.
for ((i = 0; i < n; i++)); do
	flags=(-listen "127.0.0.1:$((port_base + i))" -api-listen "127.0.0.1:$((port_base + 1000 + i))"
		-insecure -log-level warn -max-conns-per-ip 0 -ping-interval "${ping}s" -pong-timeout "${pong}s"
		-drain-grace 2s)
	if ((i == 0)); then
		flags+=(-nats-listen "127.0.0.1:$nats_port")
	else
		flags+=(-nats "nats://127.0.0.1:$nats_port")
	fi
	# shellcheck disable=SC2206 # PUSHD_FLAGS is a list of flags
	flags+=(${PUSHD_FLAGS:-})
	"$bin/pushd" "${flags[@]}" >>"$results/pushd-$i.log" 2>&1 &
	pushd_pids+=($!)
	echo "pushd ${flags[*]}" >>"$results/commands.txt"
	# The first one must be up before the others can reach its NATS server.
	if ((i == 0)) || ((i == n - 1)); then
		for ((j = 0; j <= i; j++)); do
			ok=0
			for _ in $(seq 150); do
				if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((port_base + 1000 + j))/readyz" 2>/dev/null; then
					ok=1
					break
				fi
				kill -0 "${pushd_pids[$j]}" 2>/dev/null || break
				sleep 0.2
			done
			if ((!ok)); then
				log "pushd $j did not become ready (see $results/pushd-$j.log)"
				exit 1
			fi
		done
	fi
done
pause 2

# 2. Before.
pushd_before=$(sum_rss "${pushd_pids[@]}")
used_before=$(($(meminfo MemTotal) - $(meminfo MemAvailable)))
slab_before=$(meminfo Slab)
sunreclaim_before=$(meminfo SUnreclaim)
slab_snapshot "$results/slabinfo-before.txt"
log "pushd ready: RSS $((pushd_before >> 20)) MiB over $n process(es); box in use $((used_before >> 20)) MiB"

# 3. The harness, one process per pushd, started together.
start=$(date +%s)
for ((i = 0; i < n; i++)); do
	share=$((conns / n + (i < conns % n ? 1 : 0)))
	args=(idle --label "pushd-$i" --url "ws://127.0.0.1:$((port_base + i))/ws?topics={{topic}}"
		--topics "$topics" --topic-prefix scale --conns "$share" --hold "${hold}s"
		--per-worker 19000 --source-addrs "$srcs" --server-pid "${pushd_pids[$i]}"
		--metrics "http://127.0.0.1:$((port_base + 1000 + i))/metrics"
		--max-duration "$((hold + 120))s" --quiet --json-out "$results/loadtest-$i.json")
	"$bin/loadtest" "${args[@]}" >"$results/loadtest-$i.txt" 2>&1 &
	lt_pids+=($!)
	echo "loadtest ${args[*]}" >>"$results/commands.txt"
done

open=0 last=-1 still=0
while :; do
	pause 2
	open=$(metric pushd_connections)
	elapsed=$(($(date +%s) - start))
	log "connecting: $open of $conns open after ${elapsed}s"
	((open >= conns)) && break
	if ((elapsed > budget)); then
		log "connect budget of ${budget}s spent with $open open"
		break
	fi
	if ((open == last)); then
		still=$((still + 2))
		if ((still >= 30)); then
			log "no new connection for 30s; going on with $open"
			break
		fi
	else
		still=0
	fi
	last=$open
done
connected_at=$(date +%s)
connect_seconds=$((connected_at - start))

# 4. One heartbeat cycle after the last connection opened.
log "waiting one heartbeat cycle: ${ping}s ping interval + ${pong}s pong timeout + 2s"
pause $((ping + pong + 2))

# 5. During.
held=$(metric pushd_connections)
pings=$(metric pushd_pings_sent_total)
hb_closes=$(heartbeat_closes)
pushd_during=$(sum_rss "${pushd_pids[@]}")
mapfile -t hpids < <(harness_pids | sort -u)
harness_during=$(sum_rss "${hpids[@]}")
used_during=$(($(meminfo MemTotal) - $(meminfo MemAvailable)))
slab_during=$(meminfo Slab)
sunreclaim_during=$(meminfo SUnreclaim)
slab_snapshot "$results/slabinfo-during.txt"
sockstat=$(grep '^TCP:' /proc/net/sockstat)
log "held $held connections; $pings pings sent; $hb_closes closed for a missing pong"

log "stopping the harness"
stop_pids TERM 60 "${lt_pids[@]}"
lt_pids=()
log "stopping pushd"
stop_pids TERM 15 "${pushd_pids[@]}"
pushd_pids=()

# Harness figures from its own results: pings it answered, connections the
# server closed.
answered=0 closed_by_server=0
for ((i = 0; i < n; i++)); do
	f=$results/loadtest-$i.json
	[[ -s $f ]] || continue
	a=$(sed -n 's/.*"pings": \([0-9]*\).*/\1/p' "$f" | head -n1)
	c=$(sed -n 's/.*"closed_by_server": \([0-9]*\).*/\1/p' "$f" | head -n1)
	answered=$((answered + ${a:-0}))
	closed_by_server=$((closed_by_server + ${c:-0}))
done

per_conn() { # per_conn BYTES: bytes per held connection
	if ((held > 0)); then
		awk -v b="$1" -v n="$held" 'BEGIN { printf "%.0f B", b / n }'
	else
		echo "–"
	fi
}
mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }

# Slab growth by cache: the socket's own caches (on both ends of each
# loopback connection, both ends using epoll) and everything else.
socket_caches=" TCP sock_inode_cache filp dentry eventpoll_epi eventpoll_pwq "
slab_socket=0 slab_total=0 slab_top=""
if [[ -s $results/slabinfo-before.txt && -s $results/slabinfo-during.txt ]]; then
	read -r slab_socket slab_total < <(awk -v caches="$socket_caches" '
		NR == FNR { before[$1] = $2; next }
		{ d = $2 - before[$1]; total += d; if (index(caches, " " $1 " ")) sock += d }
		END { printf "%.0f %.0f\n", sock, total }' "$results/slabinfo-before.txt" "$results/slabinfo-during.txt")
	slab_top=$(awk -v n="$held" '
		NR == FNR { before[$1] = $2; next }
		{ d = $2 - before[$1]; if (d > 0 && n > 0) printf "%s %.0f\n", $1, d / n }' \
		"$results/slabinfo-before.txt" "$results/slabinfo-during.txt" | sort -k2,2nr | head -n 8 |
		awk '{ printf "%s%s %s B", sep, $1, $2; sep = ", " }')
fi
computed=$((pushd_during - pushd_before + harness_during + slab_total))

report=$results/scale.md
{
	echo "## Connections on one box (scripts/scale.sh)"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r), $(($(meminfo MemTotal) >> 20)) MiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- $n pushd process(es) sharing one NATS (embedded in the first), ping interval ${ping}s, pong timeout ${pong}s; one loadtest idle process per pushd, $srcs source addresses each, $topics topics"
	echo "- Asked for $conns connections; $held open when measured, ${connect_seconds}s to connect, then one heartbeat cycle ($((ping + pong + 2))s)"
	echo "- Heartbeat: pushd sent $pings pings and closed $hb_closes connections for a missing pong; the harness answered $answered pings and saw $closed_by_server closed by the server"
	echo "- Kernel TCP at the measurement: ${sockstat#TCP: }"
	echo
	echo "| measure | growth | per connection |"
	echo "|---|--:|--:|"
	echo "| pushd RSS, all processes | $(mib $((pushd_during - pushd_before))) | **$(per_conn $((pushd_during - pushd_before)))** |"
	if [[ -n $slab_top ]]; then
		echo "| kernel slab, socket caches ($(echo $socket_caches | tr ' ' ',')), both ends | $(mib "$slab_socket") | $(per_conn "$slab_socket") |"
		echo "| … half of it: one server-side socket | $(mib $((slab_socket / 2))) | $(per_conn $((slab_socket / 2))) |"
		echo "| kernel slab, all caches (/proc/slabinfo) | $(mib "$slab_total") | $(per_conn "$slab_total") |"
	fi
	echo "| harness RSS (loadtest processes, whole) | $(mib "$harness_during") | $(per_conn "$harness_during") |"
	echo "| **server side**: pushd RSS + half the socket slab | $(mib $((pushd_during - pushd_before + slab_socket / 2))) | **$(per_conn $((pushd_during - pushd_before + slab_socket / 2)))** |"
	echo "| **whole box, summed**: pushd RSS + harness RSS + all slab | $(mib "$computed") | **$(per_conn "$computed")** |"
	echo "| whole box, from /proc/meminfo (MemTotal − MemAvailable; moves with anything else running) | $(mib $((used_during - used_before))) | $(per_conn $((used_during - used_before))) |"
	echo "| … Slab / SUnreclaim in /proc/meminfo | $(mib $((slab_during - slab_before))) / $(mib $((sunreclaim_during - sunreclaim_before))) | $(per_conn $((slab_during - slab_before))) / $(per_conn $((sunreclaim_during - sunreclaim_before))) |"
	echo
	[[ -n $slab_top ]] && echo "Largest slab growth per connection: $slab_top."
	echo "Before pushd started the box had $(mib "$mem0_used") in use; with pushd idle, $(mib "$used_before")."
	echo "Commands: $results/commands.txt"
} | tee "$report"
log "report in $report"
if ((held < conns)); then
	log "held only $held of $conns connections"
	exit 3
fi
