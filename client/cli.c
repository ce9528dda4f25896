/*
 * zappend-cli: put, get, delete and list keys of a zappendd, show its
 * counters and zones. Every failure is one line on stderr; the exit status
 * tells success (0), key not found (1), usage error (2), other failure (3).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "dump.h"

enum { EXIT_NOT_FOUND = 1, EXIT_USAGE = 2, EXIT_FAIL = 3 };

static const char synopsis[] =
    "Usage: " PROG " [-s SOCKET] COMMAND [ARGS]\n"
    "  put KEY [FILE]      store the value read from FILE, or from stdin\n"
    "  get KEY [-o FILE]   write the value to stdout, or to FILE\n"
    "  del KEY             delete KEY\n"
    "  ls [PREFIX]         list the keys starting with PREFIX, one a line, in byte order\n"
    "  ping                check that the daemon answers, and how fast\n"
    "  stat [--json | --prometheus]\n"
    "                      the daemon's counters: grouped, with units; a JSON object;\n"
    "                      or Prometheus's text format\n"
    "  zones [--json]      per zone: id state write_pointer capacity live_bytes inflight\n"
    "  dump [PREFIX] [-o FILE]\n"
    "                      keys starting with PREFIX and their values, to FILE or stdout\n"
    "  restore [FILE]      put every key and value of a dump, from FILE or stdin\n"
    "  bench [OPTIONS]     load generator: ops/s, MiB/s, latency percentiles (bench --help)\n"
    "  or:  " PROG " -h | --help | --version\n";

static const char details[] =
    "\nOptions:\n"
    "  -s SOCKET    the daemon's socket (default: $ZAPPEND_SOCKET, else " ZAP_DEFAULT_SOCKET ")\n"
    "  -h, --help   show this help\n"
    "  --version    show the version\n"
    "\n"
    "KEY and PREFIX are the raw bytes of the argument; put -- before one that starts\n"
    "with '-'. A FILE of - means stdin (put) or stdout (get -o).\n"
    "ls escapes bytes outside printable ASCII, and the backslash, C-style (\\n, \\t,\n"
    "\\r, \\\\, \\xHH), so that every key takes exactly one line.\n"
    "\n"
    "stat prints \"name value\" with the raw number second on every counter's line\n"
    "(awk '$1 == \"keys\" { print $2 }' reads one); sizes and times follow in units.\n"
    "\n"
    "Exit status: 0 success, 1 key not found (get, del), 2 usage error, 3 any other\n"
    "failure, with a one-line message on stderr.\n";

struct cli {
	const char *socket;
	zap_client *zc;
};

/* --- messages --- */

static int vfail(int code, const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	return code;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(EXIT_FAIL, fmt, ap);
	va_end(ap);
	return ret;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(EXIT_USAGE, fmt, ap);
	va_end(ap);
	fputs(synopsis, stderr);
	return EXIT_USAGE;
}

/* --- escaping --- */

/* The C escape of byte b, or NULL when b stands for itself. */
static const char *c_escape(uint8_t b, char tmp[5])
{
	switch (b) {
	case '\n':
		return "\\n";
	case '\t':
		return "\\t";
	case '\r':
		return "\\r";
	case '\\':
		return "\\\\";
	}
	if (b >= 0x20 && b < 0x7f)
		return NULL;
	snprintf(tmp, 5, "\\x%02x", b);
	return tmp;
}

/* Runs that need no escape go out whole: ls prints millions of keys. */
void put_escaped(FILE *f, const uint8_t *p, size_t n)
{
	size_t run = 0;
	char tmp[5];

	for (size_t i = 0; i < n; i++) {
		const char *e = c_escape(p[i], tmp);

		if (!e)
			continue;
		fwrite(p + run, 1, i - run, f);
		fputs(e, f);
		run = i + 1;
	}
	fwrite(p + run, 1, n - run, f);
}

/* Escapes p into out (cap bytes), cut short with "..." when it does not fit. */
static const char *escape_str(char *out, size_t cap, const uint8_t *p, size_t n)
{
	size_t o = 0;
	char tmp[5];

	for (size_t i = 0; i < n; i++) {
		const char *e = c_escape(p[i], tmp);
		size_t len = e ? strlen(e) : 1;

		if (o + len + 4 > cap) {
			strcpy(out + o, "...");
			return out;
		}
		memcpy(out + o, e ? e : (const char *)&p[i], len);
		o += len;
	}
	out[o] = 0;
	return out;
}

void put_json_string(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		uint8_t b = *s;

		if (b == '"' || b == '\\')
			fprintf(f, "\\%c", b);
		else if (b == '\n')
			fputs("\\n", f);
		else if (b == '\t')
			fputs("\\t", f);
		else if (b < 0x20 || b == 0x7f)
			fprintf(f, "\\u%04x", b);
		else
			putc(b, f);
	}
	putc('"', f);
}

/* --- failures of one operation --- */

/* "zappend-cli: get KEY: key not found"; not found is not_found_code, the rest EXIT_FAIL. */
static int fail_key(const char *cmd, const char *key, int err, int not_found_code)
{
	char buf[256];

	escape_str(buf, sizeof(buf), (const uint8_t *)key, strlen(key));
	fail("%s %s: %s", cmd, buf, zap_strerror(err));
	return err == -ENOENT ? not_found_code : EXIT_FAIL;
}

static int check_key(const char *key)
{
	size_t len = strlen(key);

	if (!len)
		return usage_error("the key is empty");
	if (len > ZAP_KEY_MAX_LEN)
		return usage_error("the key is %zu bytes long; the limit is %u", len,
				   ZAP_KEY_MAX_LEN);
	return 0;
}

/* Standard output was written with stdio: did all of it get out? */
static int stdout_done(const char *cmd)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	return fail("%s: writing to stdout: %s", cmd, strerror(errno ? errno : EIO));
}

/* --- command arguments --- */

enum { ARG_OUT = 1, ARG_JSON = 2, ARG_PROMETHEUS = 4 };

struct args {
	const char *pos[2];
	int npos;
	const char *out; /* get -o FILE */
	bool json;
	bool prometheus;
	bool help;
};

/* One option of a command; 1 when it consumed the next argument too, <0 a usage error. */
static int parse_opt(int allow, char **argv, int i, int argc, struct args *a)
{
	const char *arg = argv[i];

	if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
		return a->help = true, 0;
	if ((allow & ARG_JSON) && !strcmp(arg, "--json"))
		return a->json = true, 0;
	if ((allow & ARG_PROMETHEUS) && !strcmp(arg, "--prometheus"))
		return a->prometheus = true, 0;
	if ((allow & ARG_OUT) && !strncmp(arg, "-o", 2)) {
		if (arg[2])
			return a->out = arg + 2, 0;
		if (i + 1 >= argc)
			return -usage_error("option -o needs a FILE");
		a->out = argv[i + 1];
		return 1;
	}
	return -usage_error("unknown option '%s'", arg);
}

/* argv[0] is the command; between min and max positional arguments. 0 or an exit code. */
static int parse_args(int argc, char **argv, int allow, int min, int max, struct args *a)
{
	bool opts = true;
	int ret;

	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if (opts && !strcmp(argv[i], "--")) {
			opts = false;
		} else if (opts && argv[i][0] == '-' && argv[i][1]) {
			ret = parse_opt(allow, argv, i, argc, a);
			if (ret < 0)
				return -ret;
			i += ret;
		} else if (a->npos < max) {
			a->pos[a->npos++] = argv[i];
		} else {
			return usage_error("%s: unexpected argument '%s'", argv[0], argv[i]);
		}
	}
	if (a->help) {
		fputs(synopsis, stdout);
		fputs(details, stdout);
		return -1; /* done: exit 0 */
	}
	if (a->npos < min)
		return usage_error("%s: missing %s", argv[0], min == 1 ? "KEY" : "argument");
	return 0;
}

/* --- files --- */

struct value {
	void *data;
	size_t len;
	bool mapped;
};

static int read_all(int fd, struct value *v)
{
	size_t cap = 64 << 10;
	uint8_t *buf = malloc(cap), *nb;
	ssize_t n;

	v->len = 0;
	while (buf) {
		if (v->len == cap) {
			nb = realloc(buf, cap *= 2);
			if (!nb)
				break;
			buf = nb;
		}
		n = read(fd, buf + v->len, cap - v->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			free(buf);
			return n;
		}
		if (n == 0) {
			v->data = buf;
			return 0;
		}
		v->len += n;
	}
	free(buf);
	return -ENOMEM;
}

/* A regular file is mapped, anything else (pipes, /proc files) read. */
static int load_fd(int fd, bool may_map, struct value *v)
{
	struct stat st;
	void *p;

	memset(v, 0, sizeof(*v));
	if (!may_map || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
		return read_all(fd, v);
	if ((uint64_t)st.st_size > SIZE_MAX)
		return -EFBIG;
	p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return read_all(fd, v);
	v->data = p;
	v->len = st.st_size;
	v->mapped = true;
	return 0;
}

/* The value to put: from path, or stdin when path is NULL or "-". */
static int load_value(const char *path, struct value *v)
{
	int fd, ret;

	if (!path || !strcmp(path, "-")) {
		ret = load_fd(STDIN_FILENO, false, v);
		return ret ? fail("put: reading stdin: %s", strerror(-ret)) : 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("put: cannot open %s: %s", path, strerror(errno));
	ret = load_fd(fd, true, v);
	close(fd);
	return ret ? fail("put: reading %s: %s", path, strerror(-ret)) : 0;
}

static void value_free(struct value *v)
{
	if (v->mapped)
		munmap(v->data, v->len);
	else
		free(v->data);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= w;
	}
	return 0;
}

/* Writes the value to path (created or truncated), or to stdout for NULL or "-". */
static int save_value(const char *path, const void *val, size_t len)
{
	int fd, ret;

	if (!path || !strcmp(path, "-")) {
		ret = write_all(STDOUT_FILENO, val, len);
		return ret ? fail("get: writing to stdout: %s", strerror(-ret)) : 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("get: cannot create %s: %s", path, strerror(errno));
	ret = write_all(fd, val, len);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret ? fail("get: writing %s: %s", path, strerror(-ret)) : 0;
}

/* --- commands --- */

static int cli_connect(struct cli *cli)
{
	int ret = zap_connect(cli->socket, &cli->zc);

	if (!ret)
		return 0;
	if (ret == -ECONNREFUSED && access(cli->socket, F_OK) < 0)
		return fail("cannot connect to %s: no such socket (is zappendd running?)",
			    cli->socket);
	/* At connect, only the socket's own mode or group can refuse us. */
	if (ret == -EACCES)
		return fail("cannot connect to %s: permission denied by the socket's mode or group "
			    "(the zappend group may use it)",
			    cli->socket);
	return fail("cannot connect to %s: %s", cli->socket, zap_strerror(ret));
}

static int cmd_put(struct cli *cli, int argc, char **argv)
{
	struct value v;
	struct args a;
	int ret;

	ret = parse_args(argc, argv, 0, 1, 2, &a);
	if (!ret)
		ret = check_key(a.pos[0]);
	if (!ret && a.npos < 2 && isatty(STDIN_FILENO))
		ret = usage_error("put: the value would come from a terminal: give a FILE, or "
				  "pipe it in (printf %%s VALUE | " PROG " put KEY)");
	if (!ret)
		ret = load_value(a.npos > 1 ? a.pos[1] : NULL, &v);
	if (ret)
		return ret;
	ret = cli_connect(cli);
	if (!ret) {
		ret = zap_put(cli->zc, a.pos[0], strlen(a.pos[0]), v.data, v.len, NULL);
		if (ret)
			ret = fail_key("put", a.pos[0], ret, EXIT_FAIL);
	}
	value_free(&v);
	return ret;
}

static int cmd_get(struct cli *cli, int argc, char **argv)
{
	struct args a;
	void *val;
	size_t len;
	int ret;

	ret = parse_args(argc, argv, ARG_OUT, 1, 1, &a);
	if (!ret)
		ret = check_key(a.pos[0]);
	if (!ret)
		ret = cli_connect(cli);
	if (ret)
		return ret;
	ret = zap_get(cli->zc, a.pos[0], strlen(a.pos[0]), &val, &len);
	if (ret)
		return fail_key("get", a.pos[0], ret, EXIT_NOT_FOUND);
	ret = save_value(a.out, val, len);
	free(val);
	return ret;
}

static int cmd_del(struct cli *cli, int argc, char **argv)
{
	struct args a;
	int ret;

	ret = parse_args(argc, argv, 0, 1, 1, &a);
	if (!ret)
		ret = check_key(a.pos[0]);
	if (!ret)
		ret = cli_connect(cli);
	if (ret)
		return ret;
	ret = zap_del(cli->zc, a.pos[0], strlen(a.pos[0]));
	return ret ? fail_key("del", a.pos[0], ret, EXIT_NOT_FOUND) : 0;
}

static int print_key(const void *key, size_t klen, void *arg)
{
	put_escaped(stdout, key, klen);
	putc('\n', stdout);
	return ferror(stdout) ? 1 : 0; /* the reader went away: stop listing */
}

static int cmd_ls(struct cli *cli, int argc, char **argv)
{
	const char *prefix;
	struct args a;
	int ret;

	ret = parse_args(argc, argv, 0, 0, 1, &a);
	if (!ret)
		ret = cli_connect(cli);
	if (ret)
		return ret;
	prefix = a.npos ? a.pos[0] : "";
	errno = 0;
	ret = zap_list(cli->zc, prefix, strlen(prefix), print_key, NULL);
	if (ret < 0)
		return fail("ls: %s", zap_strerror(ret));
	return stdout_done("ls");
}

static int cmd_stat(struct cli *cli, int argc, char **argv)
{
	struct zap_stat_item *items;
	struct args a;
	size_t n;
	int ret;

	ret = parse_args(argc, argv, ARG_JSON | ARG_PROMETHEUS, 0, 0, &a);
	if (!ret && a.json && a.prometheus)
		ret = usage_error("stat: --json and --prometheus exclude each other");
	if (!ret)
		ret = cli_connect(cli);
	if (ret)
		return ret;
	ret = zap_stat(cli->zc, &items, &n);
	if (ret)
		return fail("stat: %s", zap_strerror(ret));
	errno = 0;
	stat_print(stdout, items, n,
		   a.json	  ? STAT_JSON
		   : a.prometheus ? STAT_PROMETHEUS
				  : STAT_HUMAN);
	zap_stat_free(items, n);
	return stdout_done("stat");
}

static int cmd_ping(struct cli *cli, int argc, char **argv)
{
	struct timespec t0, t1;
	struct args a;
	int ret;

	ret = parse_args(argc, argv, 0, 0, 0, &a);
	if (!ret)
		ret = cli_connect(cli);
	if (ret)
		return ret;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = zap_ping(cli->zc);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret)
		return fail("ping: %s", zap_strerror(ret));
	errno = 0;
	printf("zappendd on %s answered in %.3f ms\n", cli->socket,
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	return stdout_done("ping");
}

static void print_zone(const struct zap_zone *z)
{
	printf("%4" PRIu32 " %-9s %14" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8" PRIu32 "\n", z->id,
	       z->state, z->write_pointer, z->capacity, z->live_bytes, z->inflight);
}

static void print_zone_json(const struct zap_zone *z, bool last)
{
	printf("  {\"id\": %" PRIu32 ", \"state\": ", z->id);
	put_json_string(stdout, z->state);
	printf(", \"start\": %" PRIu64 ", \"write_pointer\": %" PRIu64 ", \"capacity\": %" PRIu64
	       ", \"live_bytes\": %" PRIu64 ", \"inflight\": %" PRIu32 "}%s\n",
	       z->start, z->write_pointer, z->capacity, z->live_bytes, z->inflight,
	       last ? "" : ",");
}

static int cmd_zones(struct cli *cli, int argc, char **argv)
{
	struct zap_zone *zones;
	struct args a;
	size_t n;
	int ret;

	ret = parse_args(argc, argv, ARG_JSON, 0, 0, &a);
	if (!ret)
		ret = cli_connect(cli);
	if (ret)
		return ret;
	ret = zap_zones(cli->zc, &zones, &n);
	if (ret)
		return fail("zones: %s", zap_strerror(ret));
	errno = 0;
	if (a.json)
		printf("[\n");
	else
		printf("%4s %-9s %14s %14s %14s %8s\n", "id", "state", "write_pointer", "capacity",
		       "live_bytes", "inflight");
	for (size_t i = 0; i < n; i++) {
		if (a.json)
			print_zone_json(&zones[i], i + 1 == n);
		else
			print_zone(&zones[i]);
	}
	if (a.json)
		printf("]\n");
	free(zones);
	return stdout_done("zones");
}

static int cmd_dump(struct cli *cli, int argc, char **argv)
{
	const char *prefix, *path;
	struct dump_stats st;
	char why[256];
	struct args a;
	FILE *out;
	int ret;

	ret = parse_args(argc, argv, ARG_OUT, 0, 1, &a);
	if (ret)
		return ret;
	path = a.out && strcmp(a.out, "-") ? a.out : NULL;
	if (!path && isatty(STDOUT_FILENO))
		return usage_error("dump: stdout is a terminal: give -o FILE, or redirect it");
	ret = cli_connect(cli);
	if (ret)
		return ret;
	out = path ? fopen(path, "we") : stdout;
	if (!out)
		return fail("dump: cannot create %s: %s", path, strerror(errno));
	prefix = a.npos ? a.pos[0] : "";
	ret = dump_write(cli->zc, prefix, strlen(prefix), out, &st, why, sizeof(why));
	if (path && fclose(out) && !ret) {
		ret = -errno;
		snprintf(why, sizeof(why), "writing %s: %s", path, strerror(errno));
	}
	if (ret) {
		if (path)
			unlink(path); /* no half dump left to mistake for a whole one */
		return fail("dump: %s", why);
	}
	fprintf(stderr,
		PROG ": dump: %" PRIu64 " keys, %" PRIu64
		     " value bytes, the store as of sequence %" PRIu64 "\n",
		st.keys, st.bytes, st.seq_start);
	return 0;
}

static int cmd_restore(struct cli *cli, int argc, char **argv)
{
	struct dump_stats st;
	char why[256];
	struct args a;
	FILE *in;
	int ret;

	ret = parse_args(argc, argv, 0, 0, 1, &a);
	if (ret)
		return ret;
	in = a.npos && strcmp(a.pos[0], "-") ? fopen(a.pos[0], "re") : stdin;
	if (!in)
		return fail("restore: cannot open %s: %s", a.pos[0], strerror(errno));
	if (in == stdin && isatty(STDIN_FILENO))
		return usage_error("restore: stdin is a terminal: give a FILE, or pipe a dump in");
	ret = cli_connect(cli);
	if (!ret) {
		ret = dump_restore(cli->zc, in, &st, why, sizeof(why));
		if (ret)
			ret = fail("restore: %s", why);
		else
			fprintf(stderr,
				PROG
				": restore: %" PRIu64 " keys, %" PRIu64
				" value bytes, from a dump of the store as of sequence %" PRIu64
				"\n",
				st.keys, st.bytes, st.seq_end);
	}
	if (in != stdin)
		fclose(in);
	return ret;
}

static int cmd_bench(struct cli *cli, int argc, char **argv)
{
	return bench_main(cli->socket, argc, argv);
}

/* --- main --- */

struct cmd {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
};

static const struct cmd cmds[] = {
	{ "put", cmd_put },	    { "get", cmd_get },	  { "del", cmd_del },
	{ "ls", cmd_ls },	    { "stat", cmd_stat }, { "zones", cmd_zones },
	{ "bench", cmd_bench },	    { "ping", cmd_ping }, { "dump", cmd_dump },
	{ "restore", cmd_restore },
};

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	}
	return NULL;
}

/* Options before the command. Index of the command, or -exit code. */
static int parse_global(int argc, char **argv, struct cli *cli)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			fputs(synopsis, stdout);
			fputs(details, stdout);
			return -(fflush(stdout) ? EXIT_FAIL : 0);
		} else if (!strcmp(arg, "--version")) {
			printf("%s %s\n", PROG, PACKAGE_VERSION);
			return -(fflush(stdout) ? EXIT_FAIL : 0);
		} else if (!strcmp(arg, "-s")) {
			if (++i == argc)
				return -usage_error("option -s needs a SOCKET");
			cli->socket = argv[i];
		} else if (!strncmp(arg, "-s", 2)) {
			cli->socket = arg + 2;
		} else if (!strcmp(arg, "--")) {
			i++;
			break;
		} else {
			return -usage_error("unknown option '%s'", arg);
		}
	}
	if (i == argc)
		return -usage_error("no command given");
	return i;
}

static const char *default_socket(void)
{
	const char *env = getenv("ZAPPEND_SOCKET");

	return env && *env ? env : ZAP_DEFAULT_SOCKET;
}

/*
 * A closed stdin, stdout or stderr gets /dev/null opened the wrong way round:
 * using it fails, and the daemon's socket cannot take its number (and our output).
 */
static void hold_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
	}
}

int main(int argc, char **argv)
{
	struct cli cli = { .socket = NULL };
	const struct cmd *cmd;
	int i, ret;

	/* A reader that went away is a write error to report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	hold_std_fds();
	i = parse_global(argc, argv, &cli);
	if (i <= 0)
		return -i;
	if (!cli.socket || !*cli.socket)
		cli.socket = default_socket();
	cmd = find_cmd(argv[i]);
	if (!cmd)
		return usage_error("unknown command '%s'", argv[i]);
	ret = cmd->fn(&cli, argc - i, argv + i);
	zap_close(cli.zc);
	return ret < 0 ? 0 : ret;
}
