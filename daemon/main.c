/*
 * zappendd: options, start-up, signals and shutdown, and what the service
 * manager sees of them (readiness, status, watchdog, the socket it passes).
 * Everything the daemon has lives in one context struct, here.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"
#ifdef ZAPD_FAULT
#include "dev_fault.h"
#endif
#include "log.h"
#include "options.h"
#include "pool.h"
#include "recovery.h"
#include "ring.h"
#include "server.h"
#include "service.h"
#include "store.h"

#define RING_ENTRIES 1024
/* Exit statuses besides 0 and 1: a bad setting, a device refused for good. */
enum { EXIT_BAD_OPTION = 2, EXIT_REFUSED = 3, EXIT_DAMAGED = 4 };

struct zapd {
	struct options opt;
	int argc; /* the command line, parsed again with the config file on SIGHUP */
	char **argv;
	struct zlog log;
	struct svc svc;
	struct event_base *base;
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *watchdog;
	char socket_path[108]; /* where clients connect: --socket, or systemd's socket */
	uint32_t *allow_uids, *allow_gids; /* --allow-uid, --allow-gid as numbers */
	char *resp_password;		   /* --resp-password-file's */
	size_t n_allow_uids, n_allow_gids;
	struct zdev *dev;
	struct zring ring;
	struct zpool pool;
	struct store store;
	struct server srv;
	bool failed; /* stopping for a fault, not asked to: exit status 1 */
};

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct zapd *d = arg;

	log_notice(&d->log, "%s: stopping once in-flight requests are answered",
		   sig == SIGTERM ? "SIGTERM" : "SIGINT");
	svc_notify(&d->svc, "STOPPING=1\nSTATUS=stopping: answering in-flight requests");
	server_stop(&d->srv);
}

/*
 * The kernel refuses the ring's submissions: requests in flight can never
 * end. Acknowledged data is on the media; a restart (systemd's, on exit
 * status 1) serves it again.
 */
static void on_ring_error(void *arg, int err)
{
	struct zapd *d = arg;

	log_err(&d->log, "io_uring: cannot submit I/O (%s): stopping", strerror(-err));
	svc_notify(&d->svc, "STATUS=failed: io_uring submission: %s", strerror(-err));
	d->failed = true;
	event_base_loopexit(d->base, NULL);
}

/* Keep-alives come from the event loop itself: a loop that hangs stops them. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct zapd *d = arg;

	svc_notify(&d->svc, "WATCHDOG=1");
}

static int open_log(struct zapd *d, const char *path, struct zerr *err)
{
	int ret;

	if (!path || !*path)
		return 0;
	ret = zlog_open_file(&d->log, path);
	if (ret)
		return zerr_set(err, ret, "cannot open the log file %s: %s", path, strerror(-ret));
	return 0;
}

/* --allow-uid/--allow-gid of o into d's lists (the server points at them). */
static int socket_group(const struct options *o, int *gid, struct zerr *err)
{
	uint32_t *ids;
	size_t n;

	if (options_id_list(o->socket_group, true, &ids, &n))
		return zerr_set(err, -EINVAL, "socket-group: no group '%s'", o->socket_group);
	*gid = n ? (int)ids[0] : -1;
	free(ids);
	return 0;
}

/* The first line of --resp-password-file: a password, never empty. */
static int load_password(struct zapd *d, struct zerr *err)
{
	const char *path = d->opt.resp_password_file;
	char line[512];
	FILE *f;
	size_t n;

	if (!path || !*path)
		return 0;
	f = fopen(path, "re");
	if (!f)
		return zerr_set(err, -errno, "--resp-password-file %s: %s", path, strerror(errno));
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = 0;
	if (!n)
		return zerr_set(err, -EINVAL, "--resp-password-file %s: its first line is empty",
				path);
	d->resp_password = strdup(line);
	explicit_bzero(line, sizeof(line));
	return d->resp_password ? 0 : zerr_set(err, -ENOMEM, "out of memory");
}

static int load_allow_lists(struct zapd *d, const struct options *o, struct zerr *err)
{
	uint32_t *uids, *gids;
	size_t nu, ng;

	if (options_id_list(o->allow_uid, false, &uids, &nu))
		return zerr_set(err, -EINVAL, "allow-uid: cannot resolve '%s'", o->allow_uid);
	if (options_id_list(o->allow_gid, true, &gids, &ng)) {
		free(uids);
		return zerr_set(err, -EINVAL, "allow-gid: cannot resolve '%s'", o->allow_gid);
	}
	free(d->allow_uids);
	free(d->allow_gids);
	d->allow_uids = uids;
	d->n_allow_uids = nu;
	d->allow_gids = gids;
	d->n_allow_gids = ng;
	return 0;
}

/* The per-connection limits and allow lists of o, into a server configuration. */
static void conn_limits(const struct zapd *d, const struct options *o, struct server_cfg *cfg)
{
	cfg->max_connections = o->max_connections;
	cfg->conn.max_inflight = o->max_inflight_conn;
	cfg->conn.max_queued = o->max_queued_conn;
	cfg->idle_timeout = o->idle_timeout;
	cfg->allow_uids = d->allow_uids;
	cfg->n_allow_uids = d->n_allow_uids;
	cfg->allow_gids = d->allow_gids;
	cfg->n_allow_gids = d->n_allow_gids;
}

static bool same_str(const char *a, const char *b)
{
	return (!a || !*a) ? (!b || !*b) : (b && !strcmp(a, b));
}

/*
 * SIGHUP: reopen the log file (after logrotate moved it) and re-read the
 * config file and command line. What can change live does so: log-level,
 * verbose, log-file, max-connections. A change to anything else is logged as
 * waiting for the next start; a config file that no longer parses changes
 * nothing.
 */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct zapd *d = arg;
	struct options o;
	struct zerr err = { "" };
	struct timespec now;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &now);
	svc_notify(&d->svc, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		   (unsigned long long)now.tv_sec * 1000000ull + now.tv_nsec / 1000);
	ret = options_parse(&o, d->argc, d->argv, &err);
	if (ret) {
		log_err(&d->log, "SIGHUP: keeping the current settings: %s",
			err.msg[0] ? err.msg : strerror(-ret));
		options_done(&o);
		if (open_log(d, d->opt.log_file, &err))
			log_err(&d->log, "SIGHUP: %s", err.msg);
		goto out;
	}
	if (open_log(d, o.log_file, &err)) {
		log_err(&d->log, "SIGHUP: %s; logging stays where it was", err.msg);
		free(o.log_file);
		o.log_file = d->opt.log_file ? strdup(d->opt.log_file) : NULL;
	} else if (!same_str(o.log_file, d->opt.log_file) && d->opt.log_file && *d->opt.log_file &&
		   !(o.log_file && *o.log_file)) {
		log_warn(&d->log, "SIGHUP: log-file unset: logging on to %s until the next start",
			 d->opt.log_file);
		free(o.log_file);
		o.log_file = strdup(d->opt.log_file);
	}
	d->log.level = options_log_level(&o);
	if (load_allow_lists(d, &o, &err)) {
		log_err(&d->log, "SIGHUP: %s; the allow lists stay as they were", err.msg);
		free(o.allow_uid);
		free(o.allow_gid);
		o.allow_uid = d->opt.allow_uid ? strdup(d->opt.allow_uid) : NULL;
		o.allow_gid = d->opt.allow_gid ? strdup(d->opt.allow_gid) : NULL;
	}
	conn_limits(d, &o, &d->srv.cfg);

#define RESTART_ONLY(changed, key)                                                                 \
	do {                                                                                       \
		if (changed)                                                                       \
			log_warn(&d->log, "SIGHUP: %s changed; it takes effect at the next start", \
				 key);                                                             \
	} while (0)
	RESTART_ONLY(!same_str(o.device, d->opt.device), "device");
	RESTART_ONLY(!same_str(o.socket, d->opt.socket), "socket");
	RESTART_ONLY(!same_str(o.backend, d->opt.backend), "backend");
	RESTART_ONLY(o.size != d->opt.size || o.zone_size != d->opt.zone_size ||
			 o.block != d->opt.block,
		     "size, zone-size or block");
	RESTART_ONLY(o.sync != d->opt.sync, "sync");
	RESTART_ONLY(o.max_value != d->opt.max_value, "max-value");
	RESTART_ONLY(o.buffer_pool != d->opt.buffer_pool, "buffer-pool");
	RESTART_ONLY(o.open_zones != d->opt.open_zones ||
			 o.max_open_zones != d->opt.max_open_zones ||
			 o.max_active_zones != d->opt.max_active_zones,
		     "open-zones, max-open-zones or max-active-zones");
#undef RESTART_ONLY
	/* Keep what the running daemon uses; take what changed live. */
	free(d->opt.log_file);
	d->opt.log_file = o.log_file;
	o.log_file = NULL;
	d->opt.log_level = o.log_level;
	d->opt.verbose = o.verbose;
	d->opt.max_connections = o.max_connections;
	d->opt.max_inflight_conn = o.max_inflight_conn;
	d->opt.max_queued_conn = o.max_queued_conn;
	d->opt.idle_timeout = o.idle_timeout;
	free(d->opt.allow_uid);
	free(d->opt.allow_gid);
	d->opt.allow_uid = o.allow_uid;
	d->opt.allow_gid = o.allow_gid;
	o.allow_uid = o.allow_gid = NULL;
	options_done(&o);
	log_notice(&d->log,
		   "SIGHUP: reopened the log and re-read %s: log-level %s, max-connections %u, "
		   "idle-timeout %u s, allow-uid %s, allow-gid %s",
		   d->opt.config ? d->opt.config : ZAPD_DEFAULT_CONFIG,
		   zlog_level_name(d->log.level), d->opt.max_connections, d->opt.idle_timeout,
		   d->n_allow_uids ? d->opt.allow_uid : "-",
		   d->n_allow_gids ? d->opt.allow_gid : "-");
out:
	svc_notify(&d->svc, "READY=1\nSTATUS=serving %zu keys on %s", zidx_count(d->store.idx),
		   d->socket_path);
}

static int setup_io(struct zapd *d, struct zerr *err)
{
	struct zdev_opts dopt = {
		.path = d->opt.device,
		.backend = d->opt.backend,
		.size = d->opt.size,
		.zone_size = d->opt.zone_size,
		.block = d->opt.block > UINT32_MAX ? UINT32_MAX : d->opt.block,
		.max_open = d->opt.max_open_zones,
		.max_active = d->opt.max_active_zones,
		.format = d->opt.format,
		.readonly = d->opt.verify,
		.shared = d->opt.verify_live,
	};
	int ret;

	ret = zdev_open(&dopt, &d->dev, err);
	if (ret)
		return ret;
#ifdef ZAPD_FAULT
	/* The test build: ZAPPEND_FAULT puts the device behind one that injects faults. */
	if (getenv("ZAPPEND_FAULT")) {
		ret = zdev_fault_wrap(getenv("ZAPPEND_FAULT"), &dopt, &d->dev, err);
		if (ret)
			return ret;
		log_warn(&d->log, "fault injection on: ZAPPEND_FAULT=%s", getenv("ZAPPEND_FAULT"));
	}
#endif
	ret = zring_init(&d->ring, d->base, RING_ENTRIES, d->dev->info.ring_flags);
	if (ret)
		return zerr_set(err, ret, "io_uring: %s", strerror(-ret));
	d->ring.on_error = on_ring_error;
	d->ring.error_arg = d;
	ret = zpool_init(&d->pool, d->opt.buffer_pool, MIN(d->opt.buffer_pool, 1 * MiB));
	if (ret)
		return zerr_set(err, ret, "cannot allocate the buffer pool: %s", strerror(-ret));
	ret = zring_register_buffer(&d->ring, d->pool.base, d->pool.size);
	if (ret)
		log_warn(&d->log,
			 "cannot register the buffer pool with io_uring (%s): using plain buffers; "
			 "raise the memlock limit (LimitMEMLOCK=) for fixed buffers",
			 strerror(-ret));
	zdev_attach(d->dev, &d->ring, &d->pool);
	return 0;
}

static int setup_store(struct zapd *d, struct zerr *err)
{
	struct store_cfg cfg = {
		.max_value = d->opt.max_value,
		.sync = d->opt.sync,
		.open_zones = d->opt.open_zones,
		.gc_policy = d->opt.gc_policy,
		.rescan = d->opt.rescan,
		.verify = d->opt.verify,
		.log = &d->log,
	};
	int ret = store_init(&d->store, d->dev, &d->ring, &d->pool, &cfg);

	if (ret)
		return zerr_set(err, ret, "out of memory");
	svc_notify(&d->svc, "STATUS=recovering the index from %s", d->opt.device);
	ret = store_mount(&d->store, d->opt.format, err);
	if (ret)
		return zerr_about(err, ret, d->opt.device);
	log_notice(&d->log,
		   "%s: %zu keys from %llu records in %.3f s (%llu zones read from their summary, "
		   "%llu from a checkpoint, %llu scanned; %llu torn records skipped)",
		   d->opt.device, zidx_count(d->store.idx),
		   (unsigned long long)d->store.st.recovered_records, d->store.st.recovery_seconds,
		   (unsigned long long)d->store.st.zones_summarised,
		   (unsigned long long)d->store.st.zones_checkpointed,
		   (unsigned long long)d->store.st.zones_scanned,
		   (unsigned long long)d->store.st.torn_records);
	if (d->store.zones.offline)
		log_warn(&d->log, "%s: offline zones: %u (whatever they held cannot be read)",
			 d->opt.device, d->store.zones.offline);
	return 0;
}

static int setup(struct zapd *d, struct zerr *err)
{
	struct event_config *cfg = event_config_new();
	struct server_cfg scfg = {
		.socket_path = d->opt.socket,
		.socket_gid = -1,
	};
	int ret, lfd;

	if (!cfg)
		return -ENOMEM;
	/* A socket passed by systemd (zappendd.socket) wins over --socket. */
	ret = svc_listen_fd(&lfd, d->socket_path, sizeof(d->socket_path), err);
	if (ret < 0) {
		event_config_free(cfg);
		return ret;
	}
	if (lfd >= 0) {
		scfg.inherit = true;
		scfg.inherited_fd = lfd;
		if (strcmp(d->socket_path, d->opt.socket))
			log_notice(&d->log, "serving on the socket systemd passed, %s, not on %s",
				   d->socket_path[0] ? d->socket_path : "(unnamed)", d->opt.socket);
	} else {
		snprintf(d->socket_path, sizeof(d->socket_path), "%s", d->opt.socket);
	}
	scfg.socket_path = d->socket_path;
	ret = socket_group(&d->opt, &scfg.socket_gid, err);
	if (!ret)
		ret = load_allow_lists(d, &d->opt, err);
	if (!ret)
		ret = load_password(d, err);
	if (ret) {
		if (lfd >= 0)
			close(lfd);
		event_config_free(cfg);
		return ret;
	}
	conn_limits(d, &d->opt, &scfg);
	scfg.resp = d->opt.resp && *d->opt.resp ? d->opt.resp : NULL;
	scfg.resp_password = d->resp_password;
	/* No locks: the daemon is one thread. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	d->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!d->base || event_base_priority_init(d->base, 2))
		return zerr_set(err, -ENOMEM, "cannot create the event loop");
	ret = setup_io(d, err);
	if (!ret)
		ret = setup_store(d, err);
	if (ret) {
		if (lfd >= 0)
			close(lfd);
		return ret;
	}
	ret = server_start(&d->srv, d->base, &d->store, &d->log, &scfg, err);
	if (ret)
		return ret;
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup)
		return zerr_set(err, -ENOMEM, "out of memory");
	evsignal_add(d->sig_term, NULL);
	evsignal_add(d->sig_int, NULL);
	evsignal_add(d->sig_hup, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (d->svc.watchdog_usec) {
		uint64_t half = d->svc.watchdog_usec / 2;
		struct timeval tv = { half / 1000000, half % 1000000 };

		d->watchdog = event_new(d->base, -1, EV_PERSIST, on_watchdog, d);
		if (!d->watchdog)
			return zerr_set(err, -ENOMEM, "out of memory");
		/* Above the connections' priority: a busy loop still answers the watchdog. */
		event_priority_set(d->watchdog, 0);
		event_add(d->watchdog, &tv);
		log_info(&d->log, "watchdog: a keep-alive every %.3f s", half / 1e6);
	}
	return 0;
}

static void teardown(struct zapd *d)
{
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->watchdog)
		event_free(d->watchdog);
	server_done(&d->srv);
	if (d->ring.up)
		zring_drain(&d->ring);
	store_done(&d->store);
	zring_done(&d->ring);
	zpool_done(&d->pool);
	zdev_close(d->dev);
	if (d->base)
		event_base_free(d->base);
	options_done(&d->opt);
	svc_done(&d->svc);
	free(d->allow_uids);
	free(d->allow_gids);
	free(d->resp_password);
}

/*
 * A device this daemon refuses (not a zappend store, another geometry, block
 * or format, not zoned) or a setting that cannot work stays so however often
 * the service manager restarts it: the unit's RestartPreventExitStatus.
 */
static int start_failure_status(int err)
{
	switch (err) {
	case -EINVAL:
	case -ENODEV:
	case -EPROTO:
	case -EPROTONOSUPPORT:
	case -EBADMSG:
		return EXIT_REFUSED;
	default:
		return 1;
	}
}

/* --verify's report on stdout; the damage itself was logged as it was found. */
static int verify_report(struct zapd *d)
{
	const struct store *s = &d->store;
	uint64_t damage =
	    s->st.damaged + s->st.summaries_bad + s->st.super_bad + (s->st.unreadable_bytes > 0);
	struct store_space sp;

	store_space(s, &sp);
	printf("device            %s (%s backend)\n", d->opt.device, d->dev->info.backend);
	printf("format            version %u, %u zones of %llu bytes, blocks of %u bytes\n",
	       s->sb.version, sp.zones, (unsigned long long)d->dev->info.zone_size, s->zones.block);
	printf("zones             %u full, %u open, %u empty, %u other\n", sp.full, sp.open,
	       sp.empty, sp.other);
	printf("keys              %zu\n", zidx_count(s->idx));
	printf("records           %llu\n", (unsigned long long)s->st.recovered_records);
	printf("live_bytes        %llu\n", (unsigned long long)sp.live);
	printf("dead_bytes        %llu\n", (unsigned long long)(sp.used - MIN(sp.used, sp.live)));
	printf("superblock        %u copies, %llu damaged\n", ZSUPER_COPIES,
	       (unsigned long long)s->st.super_bad);
	printf("summaries         %llu checked, %llu damaged, wrong or lost, %llu absent for want "
	       "of room\n",
	       (unsigned long long)s->st.summaries_checked, (unsigned long long)s->st.summaries_bad,
	       (unsigned long long)s->st.summaries_absent);
	printf("damaged           %llu places where a record is not whole\n",
	       (unsigned long long)s->st.damaged);
	printf("cut_short         %llu records a crash cut short (never acknowledged)\n",
	       (unsigned long long)s->st.cut_short);
	printf("unreadable_bytes  %llu\n", (unsigned long long)s->st.unreadable_bytes);
	printf("result            %s\n",
	       damage ? "DAMAGED (the log above names each place)" : "clean");
	if (fflush(stdout) || ferror(stdout))
		return 1;
	return damage ? EXIT_DAMAGED : 0;
}

/* zappendd --verify: mount read-only (the device opened so), report, never serve. */
static int verify(struct zapd *d, struct zerr *err)
{
	int ret;

	d->base = event_base_new();
	if (!d->base)
		return zerr_set(err, -ENOMEM, "cannot create the event loop");
	ret = setup_io(d, err);
	if (!ret)
		ret = setup_store(d, err);
	return ret;
}

int main(int argc, char **argv)
{
	static struct zapd zapd;
	struct zapd *d = &zapd;
	struct zerr err = { "" };
	int ret;

	/* A reload asked for during a long recovery must not kill the daemon. */
	signal(SIGHUP, SIG_IGN);
	zlog_init(&d->log, LOG_INFO);
	svc_init(&d->svc, &d->log);
	d->argc = argc;
	d->argv = argv;
	ret = options_parse(&d->opt, argc, argv, &err);
	if (ret) {
		if (ret < 0) {
			log_err(&d->log, "%s", err.msg);
			svc_notify(&d->svc, "STATUS=bad configuration: %s\nERRNO=%d", err.msg,
				   -ret);
		}
		options_done(&d->opt);
		svc_done(&d->svc);
		return ret < 0 ? EXIT_BAD_OPTION : 0;
	}
	d->log.level = options_log_level(&d->opt);
	ret = open_log(d, d->opt.log_file, &err);
	if (ret) {
		log_err(&d->log, "%s", err.msg);
		svc_notify(&d->svc, "STATUS=%s\nERRNO=%d", err.msg, -ret);
		options_done(&d->opt);
		svc_done(&d->svc);
		return EXIT_BAD_OPTION;
	}
	svc_notify(&d->svc, "STATUS=opening %s", d->opt.device);
	ret = d->opt.verify ? verify(d, &err) : setup(d, &err);
	if (ret) {
		const char *why = err.msg[0] ? err.msg : strerror(-ret);

		log_err(&d->log, "%s", why);
		svc_notify(&d->svc, "STATUS=failed: %s\nERRNO=%d", why, -ret);
		teardown(d);
		return start_failure_status(ret);
	}
	if (d->opt.verify) {
		ret = verify_report(d);
		teardown(d);
		return ret;
	}
	log_notice(&d->log,
		   "serving %s on %s (backend %s, blocks of %u bytes, logical blocks of %u, "
		   "sync %s)",
		   d->opt.device, d->socket_path, d->dev->info.backend, d->store.zones.block,
		   d->dev->info.lblock, d->opt.sync ? "always" : "none");
	/* Only now: the index is rebuilt and the listener is in the event loop. */
	svc_notify(&d->svc, "READY=1\nSTATUS=serving %zu keys on %s", zidx_count(d->store.idx),
		   d->socket_path);
	event_base_dispatch(d->base);
	log_notice(&d->log, "stopped");
	teardown(d);
	return d->failed ? 1 : 0;
}
