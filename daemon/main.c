/*
 * zappendd: options, start-up, signals and shutdown. Everything the daemon
 * has lives in one context struct, here.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "log.h"
#include "options.h"
#include "pool.h"
#include "ring.h"
#include "server.h"
#include "store.h"

#define RING_ENTRIES 1024

struct zapd {
	struct options opt;
	struct zlog log;
	struct event_base *base;
	struct event *sig_term, *sig_int;
	struct zdev *dev;
	struct zring ring;
	struct zpool pool;
	struct store store;
	struct server srv;
};

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct zapd *d = arg;

	log_notice(&d->log, "%s: stopping once in-flight requests are answered",
		   sig == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stop(&d->srv);
}

static int setup_io(struct zapd *d, struct zerr *err)
{
	struct zdev_opts dopt = {
		.path = d->opt.device,
		.backend = d->opt.backend,
		.size = d->opt.size,
		.zone_size = d->opt.zone_size,
		.max_open = d->opt.max_open_zones,
		.max_active = d->opt.max_active_zones,
		.format = d->opt.format,
	};
	int ret;

	ret = zdev_open(&dopt, &d->dev, err);
	if (ret)
		return ret;
	ret = zring_init(&d->ring, d->base, RING_ENTRIES, d->dev->info.ring_flags);
	if (ret)
		return zerr_set(err, ret, "io_uring: %s", strerror(-ret));
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
	};
	int ret = store_init(&d->store, d->dev, &d->ring, &d->pool, &cfg);

	if (ret)
		return zerr_set(err, ret, "out of memory");
	ret = store_mount(&d->store, d->opt.format, err);
	if (ret)
		return ret;
	log_notice(&d->log,
		   "%s: %zu keys from %llu records in %.3f s (%llu zones read from their summary, "
		   "%llu scanned; %llu torn records skipped)",
		   d->opt.device, zidx_count(d->store.idx),
		   (unsigned long long)d->store.st.recovered_records, d->store.st.recovery_seconds,
		   (unsigned long long)d->store.st.zones_summarised,
		   (unsigned long long)d->store.st.zones_scanned,
		   (unsigned long long)d->store.st.torn_records);
	return 0;
}

static int setup(struct zapd *d, struct zerr *err)
{
	struct event_config *cfg = event_config_new();
	struct server_cfg scfg = {
		.socket_path = d->opt.socket,
		.max_connections = d->opt.max_connections,
	};
	int ret;

	if (!cfg)
		return -ENOMEM;
	/* No locks: the daemon is one thread. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	d->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!d->base || event_base_priority_init(d->base, 2))
		return zerr_set(err, -ENOMEM, "cannot create the event loop");
	ret = setup_io(d, err);
	if (!ret)
		ret = setup_store(d, err);
	if (!ret)
		ret = server_start(&d->srv, d->base, &d->store, &d->log, &scfg, err);
	if (ret)
		return ret;
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	if (!d->sig_term || !d->sig_int)
		return zerr_set(err, -ENOMEM, "out of memory");
	evsignal_add(d->sig_term, NULL);
	evsignal_add(d->sig_int, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void teardown(struct zapd *d)
{
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
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
}

int main(int argc, char **argv)
{
	static struct zapd zapd = { .srv.lfd = -1 };
	struct zapd *d = &zapd;
	struct zerr err = { "" };
	int ret;

	zlog_init(&d->log, LOG_INFO);
	ret = options_parse(&d->opt, argc, argv, &err);
	if (ret) {
		if (ret < 0)
			log_err(&d->log, "%s", err.msg);
		options_done(&d->opt);
		return ret < 0 ? 2 : 0;
	}
	if (d->opt.verbose)
		d->log.level = LOG_DEBUG;
	ret = setup(d, &err);
	if (ret) {
		log_err(&d->log, "%s", err.msg[0] ? err.msg : strerror(-ret));
		teardown(d);
		return 1;
	}
	log_notice(&d->log, "serving %s on %s (backend %s, sync %s)", d->opt.device, d->opt.socket,
		   d->dev->info.backend, d->opt.sync ? "always" : "none");
	event_base_dispatch(d->base);
	log_notice(&d->log, "stopped");
	teardown(d);
	return 0;
}
