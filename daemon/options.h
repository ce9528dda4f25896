/*
 * zappendd's settings: defaults, then the config file (key = value, # comments;
 * every long option is a key), then the command line, which wins.
 */
#ifndef ZAPD_OPTIONS_H
#define ZAPD_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#define ZAPD_DEFAULT_CONFIG "/etc/zappend/zappendd.conf"
#define ZAPD_DEFAULT_DEVICE "/var/lib/zappend/zones.img"
#define ZAPD_DEFAULT_SOCKET "/run/zappend/zappend.sock"

struct options {
	char *config;
	char *device;
	char *socket;
	char *backend;
	uint64_t size;
	uint64_t zone_size;
	uint64_t block; /* a new format's block: 0 for the device's */
	uint64_t max_value;
	uint64_t buffer_pool;
	unsigned open_zones;
	unsigned max_open_zones;
	unsigned max_active_zones;
	unsigned max_connections;
	unsigned max_inflight_conn; /* requests in flight per connection */
	uint64_t max_queued_conn;   /* response bytes queued per connection */
	unsigned idle_timeout;	    /* seconds */
	char *allow_uid;	    /* "uid,name,..." or NULL: see options_id_list() */
	char *allow_gid;
	char *log_file;	    /* NULL: stderr */
	char *socket_group; /* group owning the socket we create; NULL: ours */
	char *resp;	    /* RESP listeners, "unix:PATH,HOST:PORT"; NULL: none */
	char *resp_password_file;
	int gc_policy; /* enum gc_policy */
	int log_level; /* LOG_ERR .. LOG_DEBUG */
	bool format;
	bool rescan;	  /* ignore zone summaries: scan every zone at start */
	bool verify;	  /* check the device, read only, report and exit */
	bool verify_live; /* ... while a daemon serves it */
	bool sync;
	bool verbose; /* --log-level debug */
};

/*
 * 0 to run, 1 when --help or --version was answered, or -errno with err set
 * (a config file's errors start with "path:LINE: "). May be called again, on
 * a fresh struct, to re-read the config file (SIGHUP).
 */
int options_parse(struct options *o, int argc, char **argv, struct zerr *err);
void options_done(struct options *o);
/* The level lines are logged at: --log-level, or debug with --verbose. */
int options_log_level(const struct options *o);
/*
 * An --allow-uid/--allow-gid list ("0,1000,alice", names looked up as users,
 * or as groups when group is set) as numbers: 0 with *ids malloc()ed (NULL
 * and *n 0 for a NULL or empty spec), or -EINVAL for an unknown name or a
 * bad number.
 */
int options_id_list(const char *spec, bool group, uint32_t **ids, size_t *n);

#endif
