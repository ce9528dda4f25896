#!/bin/sh
# A fleet of three zappendd nodes behind Debian's nutcracker (twemproxy), each
# node speaking RESP on loopback: 3000 keys through the proxy come back exact,
# ketama spreads them over every node, a node killed with kill -9 is ejected
# while the proxy goes on serving the other nodes' keys, and once restarted on
# its image the node still holds every key it had. Prints the spread and, with
# redis-benchmark installed, the rates through the proxy (never asserted).
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
# Debian's python3, where python3-redis lives (a pyenv one may come first).
py=/usr/bin/python3
nutcracker=$(command -v nutcracker || echo /usr/sbin/nutcracker)
[ -x "$nutcracker" ] || { echo "SKIP: no nutcracker (twemproxy)"; exit 77; }
command -v redis-cli >/dev/null 2>&1 || { echo "SKIP: no redis-cli (redis-tools)"; exit 77; }
"$py" -c 'import redis' 2>/dev/null || { echo "SKIP: no python3-redis for $py"; exit 77; }
name=fleet
. "$(dirname "$0")/../lib.sh"
pid1=
pid2=
pid3=
nc_pid=
trap 'for p in $pid1 $pid2 $pid3 $nc_pid; do kill -9 "$p" 2>/dev/null; done; cleanup' EXIT

# Free loopback ports, all held at once so that they differ: three nodes, the
# proxy, its stats.
set -- $("$py" -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
port1=$1 port2=$2 port3=$3 proxy=$4 stats=$5

# start_node N: zappendd on its own image, RESP on 127.0.0.1:$portN.
start_node() {
	eval "p=\$port$1"
	"$daemon" --config /dev/null --device "$dir/node$1.img" --size 256M --zone-size 16M \
		--sync always --socket "$dir/node$1.sock" --resp "127.0.0.1:$p" \
		2>>"$dir/node$1.log" &
	eval "pid$1=$!"
	i=0
	until "$cli" -s "$dir/node$1.sock" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge 600 ] || ! kill -0 $! 2>/dev/null; then
			echo "FAIL: node $1 did not start:" >&2
			cat "$dir/node$1.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

start_node 1
start_node 2
start_node 3

# Named servers: ketama hashes the names, so the spread does not depend on the ports.
cat >"$dir/nutcracker.yml" <<EOF
fleet:
  listen: 127.0.0.1:$proxy
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: true
  server_retry_timeout: 2000
  server_failure_limit: 1
  timeout: 2000
  servers:
   - 127.0.0.1:$port1:1 node1
   - 127.0.0.1:$port2:1 node2
   - 127.0.0.1:$port3:1 node3
EOF
"$nutcracker" -t -c "$dir/nutcracker.yml" >"$dir/nutcracker.test" 2>&1 ||
	{ echo "FAIL: nutcracker -t refused the configuration:" >&2; cat "$dir/nutcracker.test" >&2; exit 1; }
"$nutcracker" -c "$dir/nutcracker.yml" -p "$dir/nutcracker.pid" -o "$dir/nutcracker.log" \
	-s "$stats" -a 127.0.0.1 -i 200 &
nc_pid=$!

cat >"$dir/fleet.py" <<'PY'
import json, pickle, random, socket, sys, time, redis

cmd, d, proxy, stats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
nodes = {n: int(p) for n, p in zip((1, 2, 3), sys.argv[5:8])}
state = d + "/state"
N = 3000


def conn(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)


def node_keys(n):
    return {k.decode() for k in conn(nodes[n]).scan_iter(match="fleet:*", count=1000)}


def node_count(n):
    return int(conn(nodes[n]).info()["keys"])


def proxy_stats():
    """nutcracker's stats (JSON on its stats port), the pool's part."""
    with socket.create_connection(("127.0.0.1", stats), timeout=5) as s:
        b = b""
        while True:
            x = s.recv(65536)
            if not x:
                return json.loads(b)["fleet"]
            b += x


if cmd == "wait":  # until the proxy answers
    for _ in range(100):
        try:
            if conn(proxy).get("fleet:probe") is None:
                sys.exit(0)
        except redis.RedisError:
            time.sleep(0.1)
    sys.exit("the proxy did not answer: see nutcracker.log")

if cmd == "fill":  # 3000 keys through the proxy, read back through it
    rnd = random.Random(3000)
    vals = {"fleet:%04d" % i: rnd.randbytes(rnd.choice([0, 1, rnd.randrange(4097)]))
            for i in range(N)}
    vals["fleet:0007"] = b"\0\r\n$5\r\n*1\r\n\0"
    r = conn(proxy)
    ks = sorted(vals)
    for i in range(0, N, 500):
        p = r.pipeline(transaction=False)
        for k in ks[i:i + 500]:
            p.set(k, vals[k])
        assert p.execute() == [True] * len(ks[i:i + 500])
    # Read back: MGETs the proxy splits over the nodes, and single GETs in a pipeline.
    for i in range(0, N, 100):
        got = r.mget(ks[i:i + 100])
        bad = [k for k, g in zip(ks[i:i + 100], got) if g != vals[k]]
        assert not bad, "MGET through the proxy: %d wrong, e.g. %s" % (len(bad), bad[:5])
    p = r.pipeline(transaction=False)
    for k in ks:
        p.get(k)
    bad = [k for k, g in zip(ks, p.execute()) if g != vals[k]]
    assert not bad, "GET through the proxy: %d wrong, e.g. %s" % (len(bad), bad[:5])
    assert r.exists(*ks[:50]) == 50
    # Where each key went, asked of the nodes themselves.
    home = {}
    for n in nodes:
        for k in node_keys(n):
            assert k not in home, "%s is on node %d and node %d" % (k, home[k], n)
            home[k] = n
    assert set(home) == set(vals), "keys on no node: %s" % sorted(set(vals) - set(home))[:5]
    counts = {n: node_count(n) for n in nodes}
    print("spread: " + ", ".join("node%d %d keys (%.1f%%)" % (n, c, 100.0 * c / N)
                                 for n, c in counts.items()) + ", sum %d" % sum(counts.values()))
    assert sum(counts.values()) == N, counts
    for n, c in counts.items():
        assert c >= 0.15 * N, "node%d holds %d keys, under 15%%" % (n, c)
        assert c == sum(1 for h in home.values() if h == n), (n, c)
    pickle.dump((vals, home), open(state, "wb"))

if cmd == "outage":  # node argv[8] is dead: the others' keys are served, its keys fail or are nil
    dead = int(sys.argv[8])
    vals, home = pickle.load(open(state, "rb"))
    rnd = random.Random(dead)
    live = rnd.sample(sorted(k for k in vals if home[k] != dead), 150)
    gone = rnd.sample(sorted(k for k in vals if home[k] == dead), 150)
    r = conn(proxy)
    start, rounds, seen_err, seen_nil = time.time(), 0, 0, 0
    while True:
        rounds += 1
        ok = True
        for k in live + gone:
            try:
                g = r.get(k)
            except (redis.ConnectionError, redis.TimeoutError):
                ok, seen_err = False, seen_err + 1
                r = conn(proxy)
                continue
            except redis.ResponseError:
                ok, seen_err = False, seen_err + 1
                continue
            if k in gone:
                # Ejected: ketama maps the key to a live node, where it is not.
                assert g is None, "%s of the dead node read %r through the proxy" % (k, g[:20])
                seen_nil += 1
            elif g != vals[k]:
                assert g is None, "%s read a wrong value through the proxy" % k
                ok = False
        if ok:
            break
        assert time.time() - start < 8, "after %.1f s, the live nodes' keys are not served" % (
            time.time() - start)
        time.sleep(0.2)
    print("node%d killed: the others' keys served again after %.1f s (%d rounds, %d errors, "
          "%d nils for the dead node's keys)" % (dead, time.time() - start, rounds, seen_err,
                                                  seen_nil))
    # Writes go on, to live nodes.
    new = {"fleet:outage:%03d" % i: b"written during the outage %d" % i for i in range(100)}
    for k, v in new.items():
        for _ in range(20):
            try:
                assert r.set(k, v) is True
                break
            except redis.RedisError:
                r = conn(proxy)
                time.sleep(0.1)
        else:
            raise AssertionError("SET %s through the proxy failed for 2 s" % k)
    assert r.mget(sorted(new)) == [new[k] for k in sorted(new)]
    landed = sum(int(conn(nodes[n]).exists(*new)) for n in nodes if n != dead)
    assert landed == len(new), "%d of %d outage keys on live nodes" % (landed, len(new))
    # The proxy says why: it ejected the node (its stats come every 200 ms).
    for _ in range(25):
        st = proxy_stats()
        if st["server_ejects"] and st["node%d" % dead]["server_ejected_at"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("nutcracker's stats show no ejection: %s" % st)
    print("nutcracker: %d ejections; node%d: %d eof, %d errors" % (
        st["server_ejects"], dead, st["node%d" % dead]["server_eof"],
        st["node%d" % dead]["server_err"]))

if cmd == "back":  # node argv[8] restarted: every key it had, exact, from itself
    back = int(sys.argv[8])
    vals, home = pickle.load(open(state, "rb"))
    mine = sorted(k for k in vals if home[k] == back)
    got = conn(nodes[back]).mget(mine)
    bad = [k for k, g in zip(mine, got) if g != vals[k]]
    assert not bad, "node%d lost or changed %d of its %d keys: %s" % (back, len(bad), len(mine),
                                                                      bad[:5])
    assert node_keys(back) == set(mine), "node%d holds other keys than before" % back
    # Back in the ring once the proxy retries it: every key through the proxy again.
    r, start = conn(proxy), time.time()
    while True:
        try:
            got = r.mget(sorted(vals))
            if got == [vals[k] for k in sorted(vals)]:
                break
        except redis.RedisError:
            r = conn(proxy)
        assert time.time() - start < 8, "the proxy does not serve node%d's keys again" % back
        time.sleep(0.2)
    print("node%d restarted: its %d keys intact; all %d served through the proxy again "
          "after %.1f s" % (back, len(mine), N, time.time() - start))
PY
fleet() {
	c=$1
	shift
	"$py" "$dir/fleet.py" "$c" "$dir" "$proxy" "$stats" "$port1" "$port2" "$port3" "$@"
}

fleet wait || { cat "$dir/nutcracker.log" >&2; exit 1; }
fleet fill || fail "3000 keys through the proxy"
[ -f "$dir/state" ] || exit 1

# node2 dies without a word; the proxy ejects it after one failure.
kill -9 "$pid2"
wait "$pid2" 2>/dev/null
pid2=
fleet outage 2 || fail "the proxy with node2 dead"

start_node 2
sleep 2.5 # past server_retry_timeout: the proxy tries node2 again
fleet back 2 || fail "node2 after its restart"

# Informational: rates through the proxy.
if command -v redis-benchmark >/dev/null 2>&1; then
	echo "redis-benchmark through nutcracker (-t set,get -d 4096 -c 32 -P 8 -n 20000 -r 10000):"
	timeout 25 redis-benchmark -h 127.0.0.1 -p "$proxy" -t set,get -d 4096 -c 32 -P 8 \
		-n 20000 -r 10000 -q 2>&1 | tr '\r' '\n' | grep -v '^ *$' | grep -v ': rps=' |
		sed 's/^/  /'
else
	echo "note: no redis-benchmark: no rates"
fi
for n in 1 2 3; do
	kill -0 "$(eval echo \$pid$n)" 2>/dev/null || fail "node$n died: $(tail -n 5 "$dir/node$n.log")"
done
kill -0 "$nc_pid" 2>/dev/null || fail "nutcracker died: $(tail -n 5 "$dir/nutcracker.log")"

for n in 1 2 3; do
	eval "p=\$pid$n"
	kill -TERM "$p" && wait "$p" || fail "node$n did not exit 0 on SIGTERM"
	eval "pid$n="
done
kill -TERM "$nc_pid"
wait "$nc_pid" 2>/dev/null
nc_pid=
[ "$fails" = 0 ] || exit 1
exit 0
