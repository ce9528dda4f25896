/*
 * zappendd's options: defaults, then the config file, then the command line.
 * Every call passes --config, so the machine's own config never leaks in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "gc.h"
#include "options.h"
#include <syslog.h>

static char dir[256];
static char empty[PATH_MAX];

static char *write_config(const char *name, const char *text)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* options_parse over a NULL-terminated argument list, getopt reset first. */
static int parse_v(struct options *o, struct zerr *err, char **args)
{
	char *argv[32] = { "zappendd" };
	int argc = 1;

	while (*args) {
		assert_true(argc < 31);
		argv[argc++] = *args++;
	}
	argv[argc] = NULL;
	optind = 0; /* GNU: a full reset, so each call scans afresh */
	memset(err, 0, sizeof(*err));
	return options_parse(o, argc, argv, err);
}

#define parse(o, err, ...) parse_v(o, err, (char *[]){ __VA_ARGS__, NULL })

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/zapd-options-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(empty, sizeof(empty), "%s", write_config("empty.conf", ""));
	return 0;
}

static int teardown(void **state)
{
	char path[PATH_MAX + 32];
	const char *names[] = { "empty.conf", "full.conf", "bad.conf" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	return rmdir(dir);
}

static void test_defaults(void **state)
{
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", empty), 0);
	assert_string_equal(o.config, empty);
	assert_string_equal(o.device, ZAPD_DEFAULT_DEVICE);
	assert_string_equal(o.socket, ZAPD_DEFAULT_SOCKET);
	assert_string_equal(o.backend, "auto");
	assert_int_equal(o.size, 0);
	assert_int_equal(o.zone_size, 0);
	assert_int_equal(o.max_value, 64 * MiB);
	assert_int_equal(o.buffer_pool, 64 * MiB);
	assert_int_equal(o.open_zones, 4);
	assert_int_equal(o.max_connections, 1024);
	assert_true(o.sync);
	assert_false(o.format);
	assert_false(o.verbose);
	assert_int_equal(o.log_level, LOG_INFO);
	assert_int_equal(options_log_level(&o), LOG_INFO);
	assert_null(o.log_file);
	assert_int_equal(o.max_inflight_conn, 1024);
	assert_int_equal(o.max_queued_conn, 16 * MiB);
	assert_int_equal(o.idle_timeout, 60);
	assert_null(o.allow_uid);
	assert_null(o.allow_gid);
	options_done(&o);
}

static const char full_conf[] = "# zappendd test config\n"
				"\n"
				"device = /dev/conf-dev\n"
				"   socket=/run/conf.sock   \n"
				"\t# an indented comment\n"
				"size = 1G\n"
				"zone-size = 64M\n"
				"sync = none\n"
				"format = yes\n"
				"verbose = true\n"
				"open-zones = 8\n"
				"max-connections = 10\n"
				"buffer-pool = 8M\n"
				"max-value = 1KiB\n"
				"backend = file\n"
				"log-level = warning\n"
				"log-file = /var/log/zappendd.log\n"
				"   \n";

static void test_config_file(void **state)
{
	char *path = write_config("full.conf", full_conf);
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", path), 0);
	assert_string_equal(o.device, "/dev/conf-dev");
	assert_string_equal(o.socket, "/run/conf.sock");
	assert_string_equal(o.backend, "file");
	assert_int_equal(o.size, GiB);
	assert_int_equal(o.zone_size, 64 * MiB);
	assert_false(o.sync);
	assert_true(o.format);
	assert_true(o.verbose);
	assert_int_equal(o.open_zones, 8);
	assert_int_equal(o.max_connections, 10);
	assert_int_equal(o.buffer_pool, 8 * MiB);
	assert_int_equal(o.max_value, KiB);
	assert_int_equal(o.log_level, LOG_WARNING);
	assert_string_equal(o.log_file, "/var/log/zappendd.log");
	/* verbose = true in the file: debug, whatever log-level says. */
	assert_int_equal(options_log_level(&o), LOG_DEBUG);
	options_done(&o);
}

static void test_command_line_wins(void **state)
{
	char *path = write_config("full.conf", full_conf);
	struct options o;
	struct zerr err;

	/* --config last: the file is still read first, whatever its place. */
	assert_int_equal(parse(&o, &err, "--device", "/dev/cli", "--sync", "always", "--size", "2G",
			       "--open-zones=3", "--config", path),
			 0);
	assert_string_equal(o.device, "/dev/cli");
	assert_true(o.sync);
	assert_int_equal(o.size, 2 * GiB);
	assert_int_equal(o.open_zones, 3);
	/* What the command line left alone comes from the file. */
	assert_string_equal(o.socket, "/run/conf.sock");
	assert_int_equal(o.zone_size, 64 * MiB);
	assert_true(o.format);
	options_done(&o);
}

/* A bad config line: the error names the file and the line. */
static void expect_bad_line(const char *text, unsigned line, const char *what)
{
	char *path = write_config("bad.conf", text);
	char want[PATH_MAX + 32];
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", path), -EINVAL);
	snprintf(want, sizeof(want), "%s:%u:", path, line);
	if (!strstr(err.msg, want) || !strstr(err.msg, what))
		fail_msg("want \"%s\" and \"%s\" in \"%s\"", want, what, err.msg);
	options_done(&o);
}

static void test_config_errors(void **state)
{
	expect_bad_line("device = /x\nbogus = 1\n", 2, "bogus");
	expect_bad_line("# c\n\nsize 64M\n", 3, "");
	expect_bad_line("size = 64M\nzone-size = 64X\n", 2, "64X");
	expect_bad_line("\n\n\n\nsync = sometimes\n", 5, "sometimes");
	expect_bad_line("open-zones = -1\n", 1, "");
	expect_bad_line("format = maybe\n", 1, "maybe");
	/* A comment after a value is refused: a path would silently take it in. */
	expect_bad_line("size = 64M\ndevice = /x.img  # the main one\n", 2, "line of its own");
	expect_bad_line("buffer-pool = 128M\t# pinned\n", 1, "buffer-pool");
	/* --config is for the command line only. */
	expect_bad_line("config = /etc/other.conf\n", 1, "config");
	/* --verify would turn the service into a one-shot check: the command line only. */
	expect_bad_line("verify = yes\n", 1, "verify");
	expect_bad_line("verify-live = yes\n", 1, "verify-live");
	/* A flag given on the command line takes no value. */
	expect_bad_line("help = 1\n", 1, "help");
	expect_bad_line("log-level = warning\nlog-level = loud\n", 2, "loud");
	expect_bad_line("log-level = LOG_ERR\n", 1, "LOG_ERR");
}

static void test_connection_limits(void **state)
{
	char *path = write_config("full.conf", "max-inflight-per-connection = 16\n"
					       "max-queued-per-connection = 1M\n"
					       "idle-timeout = 5\n"
					       "allow-uid = 0, 1000,root\n"
					       "allow-gid = 0\n");
	struct options o;
	struct zerr err;
	uint32_t *ids;
	size_t n;

	assert_int_equal(parse(&o, &err, "--config", path, "--idle-timeout", "7"), 0);
	assert_int_equal(o.max_inflight_conn, 16);
	assert_int_equal(o.max_queued_conn, MiB);
	assert_int_equal(o.idle_timeout, 7);
	assert_int_equal(options_id_list(o.allow_uid, false, &ids, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 1000);
	assert_int_equal(ids[2], 0); /* root, by name */
	free(ids);
	assert_int_equal(options_id_list(o.allow_gid, true, &ids, &n), 0);
	assert_int_equal(n, 1);
	free(ids);
	options_done(&o);

	assert_int_equal(options_id_list(NULL, false, &ids, &n), 0);
	assert_null(ids);
	assert_int_equal(n, 0);
	assert_int_equal(options_id_list("12x", false, &ids, &n), -EINVAL);
	assert_int_equal(options_id_list("no-such-user-zappend", false, &ids, &n), -EINVAL);

	expect_bad_line("allow-uid = 0,no-such-user-zappend\n", 1, "no-such-user-zappend");
	expect_bad_line("\nallow-gid = no-such-group-zappend\n", 2, "no-such-group-zappend");
	assert_int_equal(parse(&o, &err, "--config", empty, "--idle-timeout", "0"), -EINVAL);
	assert_non_null(strstr(err.msg, "--idle-timeout"));
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--max-inflight-per-connection", "0"),
			 -EINVAL);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--max-queued-per-connection", "1K"),
			 -EINVAL);
	options_done(&o);
}

static void test_log_level(void **state)
{
	static const struct {
		const char *name;
		int level;
	} cases[] = { { "err", LOG_ERR },      { "error", LOG_ERR },	 { "warning", LOG_WARNING },
		      { "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
		      { "debug", LOG_DEBUG } };
	struct options o;
	struct zerr err;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(
		    parse(&o, &err, "--config", empty, "--log-level", (char *)cases[i].name), 0);
		assert_int_equal(o.log_level, cases[i].level);
		assert_int_equal(options_log_level(&o), cases[i].level);
		options_done(&o);
	}
	/* --verbose is --log-level debug, in either order. */
	assert_int_equal(parse(&o, &err, "--config", empty, "--log-level=err", "--verbose"), 0);
	assert_int_equal(options_log_level(&o), LOG_DEBUG);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--log-level", "Info"), -EINVAL);
	assert_non_null(strstr(err.msg, "--log-level"));
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--log-file", "/tmp/x.log"), 0);
	assert_string_equal(o.log_file, "/tmp/x.log");
	options_done(&o);
}

/* SIGHUP parses the same command line again, with the file's new contents. */
static void test_reparse(void **state)
{
	char *argv[] = { "zappendd", "--config", NULL, "--open-zones", "3", NULL };
	struct options o;
	struct zerr err = { "" };

	argv[2] = write_config("full.conf", "log-level = notice\nopen-zones = 9\n");
	optind = 0;
	assert_int_equal(options_parse(&o, 5, argv, &err), 0);
	assert_int_equal(o.log_level, LOG_NOTICE);
	assert_int_equal(o.open_zones, 3);
	options_done(&o);
	/* No optind reset by the caller: options_parse starts afresh by itself. */
	write_config("full.conf", "log-level = debug\nmax-connections = 7\n");
	assert_int_equal(options_parse(&o, 5, argv, &err), 0);
	assert_int_equal(o.log_level, LOG_DEBUG);
	assert_int_equal(o.max_connections, 7);
	assert_int_equal(o.open_zones, 3);
	options_done(&o);
	write_config("full.conf", "log-level = debug\nbogus = 1\n");
	assert_int_equal(options_parse(&o, 5, argv, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ":2: unknown key 'bogus'"));
	options_done(&o);
}

static void test_sync(void **state)
{
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", empty, "--sync", "none"), 0);
	assert_false(o.sync);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--sync=always"), 0);
	assert_true(o.sync);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--sync", "fast"), -EINVAL);
	assert_non_null(strstr(err.msg, "sync"));
	options_done(&o);
}

static void test_gc_policy(void **state)
{
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", empty), 0);
	assert_int_equal(o.gc_policy, GC_COST_BENEFIT);
	assert_false(o.rescan);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--gc-policy", "greedy", "--rescan"),
			 0);
	assert_int_equal(o.gc_policy, GC_GREEDY);
	assert_true(o.rescan);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--gc-policy", "random"), -EINVAL);
	assert_non_null(strstr(err.msg, "gc-policy"));
	options_done(&o);
}

static void test_sizes(void **state)
{
	static const struct {
		const char *arg;
		uint64_t want;
	} cases[] = { { "64M", 64 * MiB }, { "1G", GiB }, { "4096", 4096 }, { "1KiB", KiB } };
	struct options o;
	struct zerr err;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(
		    parse(&o, &err, "--config", empty, "--zone-size", (char *)cases[i].arg), 0);
		assert_int_equal(o.zone_size, cases[i].want);
		options_done(&o);
	}
	assert_int_equal(parse(&o, &err, "--config", empty, "--size", "lots"), -EINVAL);
	assert_non_null(strstr(err.msg, "lots"));
	options_done(&o);
}

static void test_flags(void **state)
{
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", empty, "--format", "--verbose"), 0);
	assert_true(o.format);
	assert_true(o.verbose);
	options_done(&o);
}

static void test_errors(void **state)
{
	char missing[PATH_MAX + 32];
	struct options o;
	struct zerr err;

	snprintf(missing, sizeof(missing), "%s/does-not-exist.conf", dir);
	assert_true(parse(&o, &err, "--config", missing) < 0);
	assert_non_null(strstr(err.msg, missing));
	options_done(&o);

	assert_int_equal(parse(&o, &err, "--config", empty, "stray"), -EINVAL);
	assert_non_null(strstr(err.msg, "stray"));
	options_done(&o);

	/* A stray argument before the options is just as wrong. */
	assert_int_equal(parse(&o, &err, "stray", "--config", empty, "--verbose"), -EINVAL);
	assert_non_null(strstr(err.msg, "stray"));
	options_done(&o);

	assert_int_equal(parse(&o, &err, "--config", empty, "--no-such-option"), -EINVAL);
	options_done(&o);

	assert_int_equal(parse(&o, &err, "--config", empty, "--device"), -EINVAL);
	options_done(&o);

	/* Values that check() refuses. */
	assert_int_equal(parse(&o, &err, "--config", empty, "--buffer-pool", "3M"), -EINVAL);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--open-zones", "0"), -EINVAL);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--config", empty, "--open-zones", "4294967296"), -EINVAL);
	options_done(&o);

	/* After all those failures, a good call still parses cleanly. */
	assert_int_equal(parse(&o, &err, "--config", empty), 0);
	assert_string_equal(o.device, ZAPD_DEFAULT_DEVICE);
	options_done(&o);
}

static void test_help(void **state)
{
	struct options o;
	struct zerr err;

	assert_int_equal(parse(&o, &err, "--config", empty, "--help"), 1);
	options_done(&o);
	assert_int_equal(parse(&o, &err, "--version", "--config", empty), 1);
	options_done(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_command_line_wins),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_gc_policy),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_connection_limits),
		cmocka_unit_test(test_reparse),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
