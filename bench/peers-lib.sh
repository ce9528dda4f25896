# Sourced by bench/peers and bench/peers-device: Debian's Redis and RocksDB
# next to zappendd on this machine. The sourcing script sets dir (its files)
# and fail (one line to stderr, then exit).

# Installs what is missing (root only): python3, redis-server, redis-tools, rocksdb-tools.
peers_install() {
	missing=
	for t in python3:python3 redis-server:redis-server redis-benchmark:redis-tools \
		redis-cli:redis-tools db_bench:rocksdb-tools; do
		command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"
	done
	[ -n "$missing" ] || return 0
	[ "$(id -u)" = 0 ] || fail "needs root to install$missing (or install them first)"
	echo "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >>"$dir/log" 2>&1 || fail "apt-get update failed (see $dir/log)"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >>"$dir/log" 2>&1 ||
		fail "apt-get install$missing failed (see $dir/log)"
}

cpu() { # PID: user+system CPU seconds so far
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' \
		"/proc/$1/stat"
}

# A private Redis, no config file, AOF on (fsync FSYNC: everysec or always),
# on the unix socket $rsock only; its pid in rpid.
rstart() { # FSYNC
	rm -rf "$dir/redis" "$rsock"
	mkdir -p "$dir/redis"
	redis-server --port 0 --unixsocket "$rsock" --unixsocketperm 700 --appendonly yes \
		--appendfsync "$1" --save "" --dir "$dir/redis" --logfile "$dir/redis.log" &
	rpid=$!
	i=0
	until redis-cli -s "$rsock" ping >/dev/null 2>&1; do
		if ! kill -0 $rpid 2>/dev/null || [ $i -ge 400 ]; then
			fail "redis-server did not start (see $dir/redis.log)"
		fi
		i=$((i + 1))
		sleep 0.05
	done
}

rstop() {
	kill -TERM $rpid
	wait $rpid || fail "redis-server exited with status $? on SIGTERM (see $dir/redis.log)"
	rpid=
}
