#!/bin/sh
# The RESP listener (--resp) with the clients people point at it: redis-cli's
# exact answers to each command, binary-safe and 5 MiB values, a python3-redis
# pipeline checked reply by reply against a model and again after a restart,
# acknowledged SETs surviving kill -9 under --sync always, AUTH, the refusal
# to listen beyond loopback without a password, and TCP on loopback.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
# Debian's python3, where python3-redis lives (a pyenv one may come first).
py=/usr/bin/python3
command -v redis-cli >/dev/null 2>&1 || { echo "SKIP: no redis-cli (redis-tools)"; exit 77; }
"$py" -c 'import redis' 2>/dev/null || { echo "SKIP: no python3-redis for $py"; exit 77; }
name=resp-clients
. "$(dirname "$0")/../lib.sh"
sock=$dir/s.sock
rsock=$dir/r.sock
img=$dir/zones.img
pid2=
trap 'if [ -n "$pid2" ]; then kill -9 "$pid2" 2>/dev/null; fi; cleanup' EXIT

# A loopback port nobody listens on now.
free_port() {
	"$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)

# wait_ready SOCKET PID LOG: until a ping on SOCKET answers; the test ends if PID exits.
wait_ready() {
	i=0
	until "$cli" -s "$1" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge 600 ] || ! kill -0 "$2" 2>/dev/null; then
			echo "FAIL: daemon did not start:" >&2
			cat "$3" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# start SYNC [ARGS...]: zappendd on $img, RESP on $rsock and 127.0.0.1:$port.
start() {
	s=$1
	shift
	"$daemon" --config /dev/null --device "$img" --size 256M --zone-size 16M --sync "$s" \
		--socket "$sock" --resp "unix:$rsock,127.0.0.1:$port" "$@" 2>>"$dir/daemon.log" &
	pid=$!
	wait_ready "$sock" "$pid" "$dir/daemon.log"
}

# r WANT ARGS...: redis-cli -s $rsock ARGS prints exactly WANT (printf %b: \n a newline).
r() {
	want=$(printf '%bx' "$1")
	shift
	got=$(redis-cli -s "$rsock" "$@" 2>&1; echo x)
	[ "$got" = "$want" ] || fail "redis-cli $*: printed '${got%x}', expected '${want%x}'"
}

# --- redis-cli, command by command --------------------------------------------
start none
r 'PONG\n' PING
r 'OK\n' SET greeting hello
r 'hello\n' GET greeting
r '"hello"\n' --no-raw GET greeting
r '(nil)\n' --no-raw GET no-such-key
r '(integer) 5\n' --no-raw STRLEN greeting
r '(integer) 0\n' --no-raw STRLEN no-such-key
r 'OK\n' MSET m1 one m2 "" m3 three
r '1) "one"\n2) ""\n3) (nil)\n4) "three"\n' --no-raw MGET m1 m2 no-such-key m3
r '(integer) 3\n' --no-raw EXISTS greeting m1 no-such-key m3
r 'OK\n' MSET d1 x d2 y d3 z
r '(integer) 3\n' --no-raw DEL d1 d2 no-such-key d3
r '(integer) 0\n' --no-raw DEL d1
r '(integer) 0\n' --no-raw EXISTS d1 d2 d3
r '(nil)\n' --no-raw GET d2
r 'hi there\n' ECHO 'hi there'
# Keys under p (and some that only look alike): --scan walks the cursor to its end.
for i in $(seq 25); do
	echo "SET p$i v$i"
done | redis-cli -s "$rsock" >/dev/null
r 'OK\n' MSET q1 a xp b P1 c
seq 25 | sed 's/^/p/' | sort >"$dir/want"
redis-cli -s "$rsock" --scan --pattern 'p*' | sort >"$dir/got"
cmp -s "$dir/want" "$dir/got" || fail "--scan --pattern 'p*': $(tr '\n' ' ' <"$dir/got")"
redis-cli -s "$rsock" --scan | sort >"$dir/got"
[ "$(wc -l <"$dir/got")" = 32 ] || fail "--scan: $(wc -l <"$dir/got") keys, want 32"
[ "$(sort -u "$dir/got" | wc -l)" = 32 ] || fail "--scan gave a key twice"
redis-cli -s "$rsock" INFO | tr -d '\r' >"$dir/info"
grep -qx 'keys:32' "$dir/info" || fail "INFO: no keys:32: $(grep keys "$dir/info")"
grep -qx 'redis_version:[0-9.]*' "$dir/info" || fail "INFO: no redis_version"
got=$(redis-cli -s "$rsock" FROBNICATE a b 2>&1)
[ "$got" = "ERR unknown command 'FROBNICATE'" ] || fail "unknown command: '$got'"
got=$(redis-cli -s "$rsock" SET ex-key v EX 10 2>&1)
case $got in
"ERR "*) ;;
*) fail "SET with EX: '$got', expected an ERR line" ;;
esac
r '(nil)\n' --no-raw GET ex-key
# The connection stays in step after refused commands: several on one connection.
printf 'FROB\nSET a b EX 1\nSET after-errors ok\nGET after-errors\n' |
	redis-cli -s "$rsock" >"$dir/out" 2>&1
[ "$(tail -n 2 "$dir/out")" = "$(printf 'OK\nok')" ] ||
	fail "after refused commands: $(cat "$dir/out")"

# TCP on loopback, the same store.
got=$(redis-cli -h 127.0.0.1 -p "$port" PING 2>&1)
[ "$got" = PONG ] || fail "redis-cli -p $port PING: '$got'"
got=$(redis-cli -h 127.0.0.1 -p "$port" GET greeting 2>&1)
[ "$got" = hello ] || fail "GET over TCP: '$got'"

# --- binary-safe values ------------------------------------------------------
# NULs and CRLFs in keys and values, a value that looks like RESP, a 5 MiB value.
head -c 5242880 /dev/urandom >"$dir/big"
r 'OK\n' -x SET big <"$dir/big"
"$py" - "$rsock" "$dir/big" "$dir/bin" <<'PY' || fail "binary-safe values through python3-redis"
import hashlib, sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=30)
v = b"\x00\r\n\x00abc\r\n$-1\r\n*2\r\n:1\r\n\x00" + bytes(range(256)) + b"\r\n"
assert r.set("bin", v) is True
assert r.set(b"k\x00e\r\ny", v[::-1]) is True
assert r.get("bin") == v, r.get("bin")
assert r.get(b"k\x00e\r\ny") == v[::-1]
assert r.strlen("bin") == len(v)
assert r.mget("bin", b"k\x00e\r\ny") == [v, v[::-1]]
assert r.exists(b"k\x00e\r\n") == 0
open(sys.argv[3], "wb").write(v)
big = open(sys.argv[2], "rb").read()
got = r.get("big")
assert got is not None and len(got) == len(big), None if got is None else len(got)
assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest(), "5 MiB value differs"
assert r.strlen("big") == len(big)
# Set through python too, read back with GET, and with a GET behind it in one pipeline.
assert r.set("big2", big[::-1]) is True
p = r.pipeline(transaction=False)
p.get("big2").get("bin").get("big")
a, b, c = p.execute()
assert a == big[::-1] and b == v and c == big
PY
# The same bytes through redis-cli (it adds a newline) and the native protocol.
redis-cli -s "$rsock" GET big >"$dir/out"
[ "$(wc -c <"$dir/out")" = 5242881 ] || fail "redis-cli GET big: $(wc -c <"$dir/out") bytes"
[ "$(head -c 5242880 "$dir/out" | sha256sum)" = "$(sha256sum <"$dir/big")" ] ||
	fail "redis-cli GET big: bytes differ"
"$cli" -s "$sock" get big -o "$dir/out" && cmp -s "$dir/big" "$dir/out" ||
	fail "a value SET over RESP, got natively: bytes differ"
"$cli" -s "$sock" get bin -o "$dir/out" && cmp -s "$dir/bin" "$dir/out" ||
	fail "a binary value SET over RESP, got natively: bytes differ"
printf 'native\0value' | "$cli" -s "$sock" put native || fail "native put"
"$py" - "$rsock" <<'PY' || fail "a native put read over RESP"
import sys, redis
assert redis.Redis(unix_socket_path=sys.argv[1]).get("native") == b"native\0value"
PY

# --- python3-redis: a pipeline against a model, and again after a restart ----
seed=${RESP_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
"$py" - "$rsock" "$dir/model" "$seed" <<'PY' || fail "pipeline against the model (RESP_SEED=$seed)"
import pickle, random, sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=60)
rnd = random.Random(int(sys.argv[3]))
model, want = {}, []
# Keys deleted earlier in the pipeline and not set since: a DEL of one may be
# answered 1 while the earlier delete is in flight (a known difference from Redis, see below).
gone = set()
base = int(r.info()["keys"])
keys = ["key:%02d" % i for i in range(50)]
p = r.pipeline(transaction=False)
for i in range(500):
    k = rnd.choice(keys)
    op = rnd.random()
    if op < 0.4:
        v = rnd.randbytes(rnd.choice([0, 1, rnd.randrange(200001), 200000]))
        p.set(k, v)
        model[k] = v
        gone.discard(k)
        want.append(("SET", k, True))
    elif op < 0.7:
        p.get(k)
        want.append(("GET", k, model.get(k)))
    elif op < 0.9:
        p.delete(k)
        n = int(model.pop(k, None) is not None)
        want.append(("DEL", k, n if n or k not in gone else (0, 1)))
        gone.add(k)
    else:
        ks = rnd.sample(keys, 3)
        p.mget(ks)
        want.append(("MGET", ks, [model.get(x) for x in ks]))
got = p.execute(raise_on_error=False)
assert len(got) == len(want), (len(got), len(want))
bad = [(i, w[0], w[1], g if not isinstance(g, bytes) else len(g))
       for i, (w, g) in enumerate(zip(want, got))
       if not (g in w[2] if isinstance(w[2], tuple) else g == w[2])]
assert not bad, "replies differing from the model: %s" % bad[:10]
# A DEL of a key whose delete is still in flight finds the value that one
# will delete, and answers 1 (Redis: 0): a known difference, counted here.
dd = sum(1 for w, g in zip(want, got) if isinstance(w[2], tuple) and g == 1)
if dd:
    print("note: %d of %d DELs of a key already deleted in the pipeline "
          "answered 1" % (dd, sum(1 for w in want if isinstance(w[2], tuple))))
r.set("twice", "v")
n = r.delete("twice", "twice")
if n != 1:
    print("note: DEL twice twice answered %d (Redis: 1)" % n)
assert int(r.info()["keys"]) == base + len(model), (r.info()["keys"], base, len(model))
pickle.dump(model, open(sys.argv[2], "wb"))
print("pipeline: 500 replies as the model says, %d keys, %d bytes" %
      (len(model), sum(map(len, model.values()))))
PY
stop_daemon
start none
"$py" - "$rsock" "$dir/model" <<'PY' || fail "the pipeline's keys after a restart"
import pickle, sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=60)
model = pickle.load(open(sys.argv[2], "rb"))
for i in range(50):
    k = "key:%02d" % i
    assert r.get(k) == model.get(k), "%s differs after the restart" % k
assert sorted(r.scan_iter(match="key:*", count=13)) == sorted(k.encode() for k in model)
PY
stop_daemon

# --- kill -9: what was acknowledged under --sync always is kept --------------
# 300 SETs one by one, each acknowledged; then, on another connection, SETs
# streaming without pause while the daemon is killed: each one acknowledged
# before the kill must be there after the restart, the others whole or absent.
rm -f "$img"
start always
"$py" - "$rsock" "$dir/acked" "$pid" <<'PY' || fail "acknowledged SETs, then kill -9"
import os, pickle, random, signal, socket, sys, threading, time, redis
r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=30)
rnd = random.Random(300)
acked = {}
for i in range(300):
    k, v = "durable:%03d" % i, rnd.randbytes(rnd.randrange(1, 20000))
    assert r.set(k, v) is True, k
    acked[k] = v

def late_value(i):
    return (b"late %05d " % i) * 100

s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
sent = 0

def writer():
    global sent
    try:
        while sent < 20000:
            v = late_value(sent)
            s.sendall(b"*3\r\n$3\r\nSET\r\n$10\r\nlate:%05d\r\n$%d\r\n%s\r\n" % (sent, len(v), v))
            sent += 1
    except OSError:
        pass

threading.Thread(target=writer, daemon=True).start()
buf, oks, killed, deadline = b"", 0, False, time.time() + 5
s.settimeout(5)
while True:
    # Killed amid the stream, with SETs still in flight.
    if not killed and (oks >= 1000 or time.time() > deadline):
        os.kill(int(sys.argv[3]), signal.SIGKILL)
        killed = True
    try:
        x = s.recv(65536)
    except OSError:
        break
    if not x:
        break
    buf += x
    while len(buf) >= 5:
        assert buf[:5] == b"+OK\r\n", buf[:80]
        buf, oks = buf[5:], oks + 1
assert killed and oks > 0, (oks, sent)
pickle.dump((acked, oks, sent), open(sys.argv[2], "wb"))
print("kill -9: 300 SETs acknowledged one by one, then %d of %d streaming SETs "
      "before the kill" % (oks, sent))
PY
wait "$pid" 2>/dev/null
pid=
start always
"$py" - "$rsock" "$dir/acked" <<'PY' || fail "acknowledged SETs after kill -9"
import pickle, sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=30)
acked, oks, sent = pickle.load(open(sys.argv[2], "rb"))
ks = sorted(acked)
got = r.mget(ks)
lost = [k for k, g in zip(ks, got) if g != acked[k]]
assert not lost, "%d of %d acknowledged keys lost or wrong after kill -9: %s" % (
    len(lost), len(ks), lost[:5])
late = ["late:%05d" % i for i in range(sent)]
got = r.mget(late) if late else []
lost = [i for i in range(oks) if got[i] != (b"late %05d " % i) * 100]
assert not lost, "%d of %d acknowledged streaming SETs lost: %s" % (len(lost), oks, lost[:5])
torn = [i for i in range(oks, sent) if got[i] not in (None, (b"late %05d " % i) * 100)]
assert not torn, "unacknowledged SETs neither whole nor absent: %s" % torn[:5]
kept = sum(1 for g in got if g is not None)
assert int(r.info()["keys"]) == 300 + kept, (r.info()["keys"], kept)
PY
stop_daemon

# --- AUTH, and the refusal to listen beyond loopback without it ---------------
aport=$(free_port)
"$daemon" --config /dev/null --device "$dir/open.img" --size 64M --zone-size 4M \
	--socket "$dir/open.sock" --resp "0.0.0.0:$aport" >"$dir/out" 2>&1 &
pid2=$!
i=0
while kill -0 "$pid2" 2>/dev/null && [ $i -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
done
if kill -0 "$pid2" 2>/dev/null; then
	fail "--resp 0.0.0.0:$aport without --resp-password-file: it started"
	kill -9 "$pid2"
	wait "$pid2" 2>/dev/null
else
	wait "$pid2" && fail "--resp 0.0.0.0:$aport without a password: exit status 0"
	grep -q -- "--resp-password-file" "$dir/out" ||
		fail "--resp 0.0.0.0 refused without naming --resp-password-file: $(cat "$dir/out")"
fi
pid2=

printf 'corr3ct horse\n' >"$dir/pw"
asock=$dir/auth.sock
"$daemon" --config /dev/null --device "$dir/auth.img" --size 64M --zone-size 4M \
	--socket "$dir/auth-native.sock" --resp "unix:$asock,127.0.0.1:$aport" \
	--resp-password-file "$dir/pw" 2>"$dir/auth.log" &
pid2=$!
wait_ready "$dir/auth-native.sock" "$pid2" "$dir/auth.log"
got=$(redis-cli -s "$asock" GET a 2>&1)
[ "$got" = "NOAUTH Authentication required." ] || fail "GET before AUTH: '$got'"
got=$(redis-cli -s "$asock" SET a b 2>&1)
[ "$got" = "NOAUTH Authentication required." ] || fail "SET before AUTH: '$got'"
got=$(redis-cli -s "$asock" AUTH wrong 2>&1)
case $got in
WRONGPASS*) ;;
*) fail "a wrong password: '$got'" ;;
esac
got=$(printf 'AUTH wrong\nGET a\n' | redis-cli -s "$asock" 2>&1 | grep . | tail -n 1)
[ "$got" = "NOAUTH Authentication required." ] || fail "GET after a wrong AUTH: '$got'"
got=$(redis-cli -s "$asock" -a 'corr3ct horse' --no-auth-warning SET a b 2>&1)
[ "$got" = OK ] || fail "SET with the password: '$got'"
got=$(redis-cli -h 127.0.0.1 -p "$aport" -a 'corr3ct horse' --no-auth-warning GET a 2>&1)
[ "$got" = b ] || fail "GET with the password over TCP: '$got'"
got=$(redis-cli -h 127.0.0.1 -p "$aport" GET a 2>&1)
[ "$got" = "NOAUTH Authentication required." ] || fail "GET over TCP before AUTH: '$got'"
"$py" - "$asock" <<'PY' || fail "python3-redis with a password"
import sys, redis
try:
    redis.Redis(unix_socket_path=sys.argv[1], password="wrong").ping()
    raise SystemExit("a wrong password was taken")
except redis.RedisError as e:  # redis-py 4.3 raises WRONGPASS as a ResponseError
    assert "WRONGPASS" in str(e) or isinstance(e, redis.AuthenticationError), repr(e)
try:
    redis.Redis(unix_socket_path=sys.argv[1]).get("a")
    raise SystemExit("no password was taken")
except redis.AuthenticationError as e:
    assert "Authentication required" in str(e), repr(e)
r = redis.Redis(unix_socket_path=sys.argv[1], password="corr3ct horse")
assert r.ping() is True
assert r.get("a") == b"b"
assert r.set("py", b"\0x") is True and r.get("py") == b"\0x"
PY
kill -TERM "$pid2" && wait "$pid2" || fail "the AUTH daemon did not exit 0 on SIGTERM"
pid2=

grep -q "ERROR: AddressSanitizer\|runtime error" "$dir/daemon.log" "$dir/auth.log" &&
	fail "sanitizer reports: $(grep -h "ERROR\|runtime error" "$dir/daemon.log" "$dir/auth.log")"
[ "$fails" = 0 ] || exit 1
exit 0
