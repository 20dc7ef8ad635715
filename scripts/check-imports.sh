#!/usr/bin/env bash
# Enforces the package boundaries in docs/architecture.md:
#  - only netpoll imports gnet;
#  - codec imports nothing of ours;
#  - conn and topics never import netpoll; topics never imports conn;
#  - nothing imports cmd/..., bench or loadtest;
#  - only the broker implementations (topics/broker/<impl>), cmd/pushd,
#    bench and loadtest import nats.go or nats-server (tests may import them:
#    go list -deps sees only non-test imports);
#  - topics/broker imports nothing of ours but codec.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
fail=0
deps() { go list -deps "$1" 2>/dev/null; }
for pkg in $(go list ./...); do
	d=$(deps "$pkg")
	case "$pkg" in
	"$mod"/netpoll*|"$mod"/cmd/*|"$mod"/bench*|"$mod"/loadtest*) ;;
	*)
		if grep -q '^github.com/panjf2000/gnet' <<<"$d"; then
			echo "$pkg imports gnet (only netpoll may)"; fail=1
		fi ;;
	esac
	case "$pkg" in
	"$mod"/codec*)
		if grep "^$mod/" <<<"$d" | grep -vq "^$mod/codec"; then
			echo "$pkg imports pushd packages (codec must import none)"; fail=1
		fi ;;
	"$mod"/conn*|"$mod"/topics*)
		if grep -q "^$mod/netpoll" <<<"$d"; then echo "$pkg imports netpoll"; fail=1; fi ;;
	esac
	case "$pkg" in
	"$mod"/topics*)
		if grep -q "^$mod/conn" <<<"$d"; then echo "$pkg imports conn"; fail=1; fi ;;
	esac
	case "$pkg" in
	"$mod"/topics/broker/*/*|"$mod"/topics/broker/*|"$mod"/cmd/*|"$mod"/bench*|"$mod"/loadtest*) ;;
	*)
		if grep -qE '^github.com/nats-io/(nats.go|nats-server)' <<<"$d"; then
			echo "$pkg imports nats.go or nats-server (only broker implementations may)"; fail=1
		fi ;;
	esac
	if [ "$pkg" = "$mod/topics/broker" ] && grep "^$mod/" <<<"$d" | grep -vqE "^$mod/(codec|topics/broker)$"; then
		echo "$pkg imports pushd packages beyond codec"; fail=1
	fi
	if grep -E "^$mod/(cmd|bench|loadtest)" <<<"$d" | grep -vqx "$pkg"; then
		case "$pkg" in
		"$mod"/loadtest*|"$mod"/bench*|"$mod"/cmd/*) ;; # their own sub-packages
		*) echo "$pkg imports cmd, bench or loadtest"; fail=1 ;;
		esac
	fi
done
exit $fail
