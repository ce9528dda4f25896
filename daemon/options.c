#include "options.h"

#include "gc.h"
#include "log.h"
#include "server.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_type {
	OPT_STR,
	OPT_SIZE,
	OPT_UINT,
	OPT_FLAG,
	OPT_SYNC,
	OPT_GC,
	OPT_LEVEL,
	OPT_UIDS,
	OPT_GIDS,
	OPT_CONFIG
};

struct opt_def {
	const char *name;
	enum opt_type type;
	size_t off;
	const char *arg;
	const char *help;
};

#define O(f) offsetof(struct options, f)

static const struct opt_def defs[] = {
	{ "config", OPT_CONFIG, O(config), "FILE",
	  "config file (default " ZAPD_DEFAULT_CONFIG ")" },
	{ "device", OPT_STR, O(device), "PATH", "zoned device or image file" },
	{ "socket", OPT_STR, O(socket), "PATH", "Unix socket to serve on" },
	{ "socket-group", OPT_STR, O(socket_group), "GROUP",
	  "group owning the socket (mode 0660) when zappendd creates it" },
	{ "resp", OPT_STR, O(resp), "unix:PATH,HOST:PORT",
	  "also serve the Redis protocol (RESP2) there; TCP beyond loopback needs a password" },
	{ "resp-password-file", OPT_STR, O(resp_password_file), "FILE",
	  "RESP clients must AUTH with the password in FILE (its first line)" },
	{ "backend", OPT_STR, O(backend), "NAME", "auto, file, zbd or nvme" },
	{ "size", OPT_SIZE, O(size), "SIZE", "file backend: image size at creation (4G)" },
	{ "zone-size", OPT_SIZE, O(zone_size), "SIZE",
	  "file backend: zone size at creation (64M)" },
	{ "block", OPT_SIZE, O(block), "SIZE",
	  "a new format's block, 512 to 4K (the device's; on a file, its file system's)" },
	{ "format", OPT_FLAG, O(format), NULL, "wipe the device and format it" },
	{ "verify", OPT_FLAG, O(verify), NULL,
	  "check the device without writing to it, report, exit (command line only)" },
	{ "verify-live", OPT_FLAG, O(verify_live), NULL,
	  "--verify beside the daemon serving the device: what it writes meanwhile may "
	  "read as damage (command line only)" },
	{ "rescan", OPT_FLAG, O(rescan), NULL,
	  "ignore zone summaries at start: scan every zone (slower)" },
	{ "gc-policy", OPT_GC, O(gc_policy), "cost-benefit|greedy",
	  "how GC picks the zone to reclaim (cost-benefit)" },
	{ "sync", OPT_SYNC, O(sync), "always|none", "acknowledge puts once flushed (always)" },
	{ "max-value", OPT_SIZE, O(max_value), "SIZE", "largest value accepted (64M)" },
	{ "buffer-pool", OPT_SIZE, O(buffer_pool), "SIZE", "registered I/O buffer memory (64M)" },
	{ "open-zones", OPT_UINT, O(open_zones), "N", "zones taking appends at once (4)" },
	{ "max-open-zones", OPT_UINT, O(max_open_zones), "N",
	  "open zone limit: emulated (file), or lower than the device's" },
	{ "max-active-zones", OPT_UINT, O(max_active_zones), "N",
	  "active zone limit: emulated (file), or lower than the device's" },
	{ "max-connections", OPT_UINT, O(max_connections), "N", "client connections (1024)" },
	{ "max-inflight-per-connection", OPT_UINT, O(max_inflight_conn), "N",
	  "a connection's requests in flight before reading it pauses (1024)" },
	{ "max-queued-per-connection", OPT_SIZE, O(max_queued_conn), "SIZE",
	  "a connection's unread response bytes before reading it pauses (16M)" },
	{ "idle-timeout", OPT_UINT, O(idle_timeout), "SECONDS",
	  "close a connection stalled mid-request or not reading responses (60)" },
	{ "allow-uid", OPT_UIDS, O(allow_uid), "UID,...",
	  "only these users (and root) may connect; names or numbers" },
	{ "allow-gid", OPT_GIDS, O(allow_gid), "GID,...",
	  "only peers in these primary groups (and root) may connect" },
	{ "log-level", OPT_LEVEL, O(log_level), "LEVEL",
	  "err, warning, notice, info (the default) or debug" },
	{ "verbose", OPT_FLAG, O(verbose), NULL, "log debug lines too (--log-level debug)" },
	{ "log-file", OPT_STR, O(log_file), "FILE",
	  "append log lines to FILE instead of stderr; SIGHUP reopens it" },
};

static void defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->device = strdup(ZAPD_DEFAULT_DEVICE);
	o->socket = strdup(ZAPD_DEFAULT_SOCKET);
	o->backend = strdup("auto");
	o->max_value = 64 * MiB;
	o->buffer_pool = 64 * MiB;
	o->open_zones = 4;
	o->max_connections = 1024;
	o->max_inflight_conn = SERVER_MAX_INFLIGHT;
	o->max_queued_conn = SERVER_MAX_QUEUED;
	o->idle_timeout = SERVER_IDLE_TIMEOUT;
	o->sync = true;
	o->log_level = LOG_INFO;
}

void options_done(struct options *o)
{
	free(o->config);
	free(o->device);
	free(o->socket);
	free(o->backend);
	free(o->log_file);
	free(o->socket_group);
	free(o->resp);
	free(o->resp_password_file);
	free(o->allow_uid);
	free(o->allow_gid);
	memset(o, 0, sizeof(*o));
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* v NULL: a flag given on the command line. */
static int set(struct options *o, const struct opt_def *d, const char *v)
{
	void *f = (char *)o + d->off;
	char *end;
	unsigned long n;

	switch (d->type) {
	case OPT_CONFIG:
	case OPT_STR:
		free(*(char **)f);
		*(char **)f = strdup(v);
		return *(char **)f ? 0 : -ENOMEM;
	case OPT_SIZE:
		return parse_size(v, f);
	case OPT_UINT:
		errno = 0;
		n = strtoul(v, &end, 10);
		if (!isdigit((unsigned char)*v) || *end || errno || n > UINT32_MAX)
			return -EINVAL;
		*(unsigned *)f = n;
		return 0;
	case OPT_FLAG:
		if (!v)
			return *(bool *)f = true, 0;
		return parse_bool(v, f);
	case OPT_SYNC:
		if (strcmp(v, "always") && strcmp(v, "none"))
			return -EINVAL;
		*(bool *)f = !strcmp(v, "always");
		return 0;
	case OPT_GC:
		if (strcmp(v, "cost-benefit") && strcmp(v, "greedy"))
			return -EINVAL;
		*(int *)f = !strcmp(v, "greedy") ? GC_GREEDY : GC_COST_BENEFIT;
		return 0;
	case OPT_LEVEL:
		if (zlog_parse_level(v) < 0)
			return -EINVAL;
		*(int *)f = zlog_parse_level(v);
		return 0;
	case OPT_UIDS:
	case OPT_GIDS: {
		uint32_t *ids;
		size_t nids;

		if (options_id_list(v, d->type == OPT_GIDS, &ids, &nids))
			return -EINVAL;
		free(ids);
		free(*(char **)f);
		*(char **)f = strdup(v);
		return *(char **)f ? 0 : -ENOMEM;
	}
	}
	return -EINVAL;
}

static const struct opt_def *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
		if (!strcmp(defs[i].name, name))
			return &defs[i];
	}
	return NULL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int load_config(struct options *o, const char *path, bool must, struct zerr *err)
{
	FILE *f = fopen(path, "re");
	char line[4096];
	unsigned lineno = 0;
	int ret = 0;

	if (!f) {
		if (errno == ENOENT && !must)
			return 0;
		return zerr_set(err, -errno, "%s: %s", path, strerror(errno));
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq, *k, *v;
		const struct opt_def *d;

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			ret = zerr_set(err, -EINVAL, "%s:%u: expected key = value", path, lineno);
			break;
		}
		*eq = 0;
		k = trim(s);
		v = trim(eq + 1);
		d = find(k);
		if (strstr(v, " #") || strstr(v, "\t#"))
			ret = zerr_set(err, -EINVAL,
				       "%s:%u: a comment after the value of %s: give it a line "
				       "of its own",
				       path, lineno, k);
		else if (!d || d->type == OPT_CONFIG || d->off == O(verify) ||
			 d->off == O(verify_live))
			ret = zerr_set(err, -EINVAL, "%s:%u: unknown key '%s'", path, lineno, k);
		else if (set(o, d, v))
			ret = zerr_set(err, -EINVAL, "%s:%u: bad value '%s' for %s", path, lineno,
				       v, k);
	}
	fclose(f);
	return ret;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: zappendd [options]\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
		char left[48];

		snprintf(left, sizeof(left), "--%s%s%s", defs[i].name, defs[i].arg ? " " : "",
			 defs[i].arg ? defs[i].arg : "");
		fprintf(out, "  %-36s %s\n", left, defs[i].help);
	}
	fprintf(out, "  %-36s %s\n  %-36s %s\n", "--help", "this text", "--version", "the version");
}

static int check(const struct options *o, struct zerr *err)
{
	if (!o->max_value)
		return zerr_set(err, -EINVAL, "--max-value must be above 0");
	if (o->buffer_pool < 4 * MiB || (o->buffer_pool & (o->buffer_pool - 1)))
		return zerr_set(err, -EINVAL, "--buffer-pool must be a power of two, 4M or more");
	if (!o->open_zones)
		return zerr_set(err, -EINVAL, "--open-zones must be 1 or more");
	if (!o->max_connections)
		return zerr_set(err, -EINVAL, "--max-connections must be 1 or more");
	if (!o->max_inflight_conn)
		return zerr_set(err, -EINVAL, "--max-inflight-per-connection must be 1 or more");
	if (o->max_queued_conn < 64 * KiB)
		return zerr_set(err, -EINVAL, "--max-queued-per-connection must be 64K or more");
	if (!o->idle_timeout)
		return zerr_set(err, -EINVAL, "--idle-timeout must be 1 second or more");
	if (o->verify && o->format)
		return zerr_set(err, -EINVAL,
				"--verify never formats: drop --format (or format = yes)");
	return 0;
}

int options_parse(struct options *o, int argc, char **argv, struct zerr *err)
{
	struct option lopts[ARRAY_SIZE(defs) + 3];
	const char *config = NULL;
	int ret, c, idx;

	defaults(o);
	optind = 0; /* GNU getopt: a full reset, so that a second call scans afresh */
	for (size_t i = 0; i < ARRAY_SIZE(defs); i++)
		lopts[i] =
		    (struct option){ defs[i].name, defs[i].arg ? required_argument : no_argument,
				     NULL, 0 };
	lopts[ARRAY_SIZE(defs)] = (struct option){ "help", no_argument, NULL, 'h' };
	lopts[ARRAY_SIZE(defs) + 1] = (struct option){ "version", no_argument, NULL, 'V' };
	lopts[ARRAY_SIZE(defs) + 2] = (struct option){ 0 };

	/* First pass: only --config, so that the file comes before the other options. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lopts, &idx)) != -1) {
		if (c == 0 && defs[idx].type == OPT_CONFIG)
			config = optarg;
	}
	ret = load_config(o, config ? config : ZAPD_DEFAULT_CONFIG, config != NULL, err);
	if (ret)
		return ret;

	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "", lopts, &idx)) != -1) {
		switch (c) {
		case 0:
			if (set(o, &defs[idx], optarg))
				return zerr_set(err, -EINVAL, "bad value '%s' for --%s", optarg,
						defs[idx].name);
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("zappendd %s\n", PACKAGE_VERSION);
			return 1;
		default:
			usage(stderr);
			return zerr_set(err, -EINVAL, "unknown option (see above)");
		}
	}
	if (optind < argc)
		return zerr_set(err, -EINVAL, "unexpected argument '%s'", argv[optind]);
	o->verify |= o->verify_live;
	return check(o, err);
}

int options_log_level(const struct options *o)
{
	return o->verbose ? LOG_DEBUG : o->log_level;
}

static int lookup_id(const char *name, bool group, uint32_t *id)
{
	char *end;
	unsigned long n;

	if (isdigit((unsigned char)*name)) {
		errno = 0;
		n = strtoul(name, &end, 10);
		if (*end || errno || n >= UINT32_MAX)
			return -EINVAL;
		*id = n;
		return 0;
	}
	if (group) {
		struct group *g = getgrnam(name);

		if (!g)
			return -EINVAL;
		*id = g->gr_gid;
	} else {
		struct passwd *p = getpwnam(name);

		if (!p)
			return -EINVAL;
		*id = p->pw_uid;
	}
	return 0;
}

int options_id_list(const char *spec, bool group, uint32_t **ids, size_t *n)
{
	char *copy, *tok, *save = NULL;
	size_t cap = 0;
	int ret = 0;

	*ids = NULL;
	*n = 0;
	if (!spec || !*spec)
		return 0;
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", ", &save); tok && !ret; tok = strtok_r(NULL, ", ", &save)) {
		if (*n == cap) {
			uint32_t *nids = realloc(*ids, (cap = cap ? 2 * cap : 8) * sizeof(**ids));

			if (!nids) {
				ret = -ENOMEM;
				break;
			}
			*ids = nids;
		}
		ret = lookup_id(tok, group, &(*ids)[*n]);
		if (!ret)
			(*n)++;
	}
	free(copy);
	if (ret) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return ret;
}
