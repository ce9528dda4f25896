/*
 * zappend-cli stat's three faces: grouped lines with units for a person, a
 * JSON object for scripts, and Prometheus's text exposition format.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* --- for a person --- */

/* Counters go under the first group whose prefix their name starts with. */
static const struct {
	const char *prefix, *group;
} groups[] = {
	{ "gc_", "gc" },
	{ "snapshot", "snapshots" },
	{ "zone", "zones" },
	{ "max_inflight_per_zone", "zones" },
	{ "recover", "recovery and integrity" },
	{ "corrupt_", "recovery and integrity" },
	{ "torn_", "recovery and integrity" },
	{ "unreadable_", "recovery and integrity" },
	{ "summary_", "recovery and integrity" },
	{ "connection", "connections" },
	{ "bad_frames", "connections" },
	{ "max_connections", "connections" },
	{ "max_inflight_per_connection", "connections" },
	{ "max_queued_", "connections" },
	{ "idle_timeout", "connections" },
	{ "buffer_pool", "memory" },
	{ "fixed_buffers", "memory" },
	{ "index_bytes", "memory" },
	{ "puts", "operations" },
	{ "gets", "operations" },
	{ "dels", "operations" },
	{ "put_bytes", "operations" },
	{ "get_bytes", "operations" },
	{ "batched_", "operations" },
	{ "appended_", "operations" },
	{ "write_amplification", "operations" },
	{ "flushes", "operations" },
	{ "errors", "operations" },
	{ "waiting_for_space", "operations" },
};

static const char *const group_order[] = {
	"store", "operations", "zones", "gc", "recovery and integrity", "connections", "memory",
};

static const char *group_of(const char *name)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		if (!strncmp(name, groups[i].prefix, strlen(groups[i].prefix)))
			return groups[i].group;
	}
	return "store";
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* "  (1.5 GiB)" for sizes of a KiB and more; nothing below. */
static void print_size(FILE *f, uint64_t v)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = v / 1024.0;
	unsigned u = 0;

	if (v < 1024)
		return;
	while (d >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		d /= 1024;
		u++;
	}
	fprintf(f, "  (%.1f %s)", d, unit[u]);
}

/* "  (2d 03:04:05)" for a minute and more. */
static void print_duration(FILE *f, uint64_t s)
{
	if (s < 60)
		return;
	fputs("  (", f);
	if (s >= 86400)
		fprintf(f, "%" PRIu64 "d ", s / 86400);
	fprintf(f, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ")", s / 3600 % 24, s / 60 % 60,
		s % 60);
}

static void print_human_item(FILE *f, const struct zap_stat_item *it)
{
	fprintf(f, "  %-32s ", it->name);
	if (it->type == ZAP_STAT_STRING) {
		put_escaped(f, (const uint8_t *)it->s, strlen(it->s));
	} else if (it->type == ZAP_STAT_DOUBLE) {
		fprintf(f, "%.15g", it->d);
	} else {
		fprintf(f, "%" PRIu64, it->u);
		if (ends_with(it->name, "_bytes") || !strcmp(it->name, "buffer_pool_free") ||
		    !strcmp(it->name, "max_value"))
			print_size(f, it->u);
		else if (ends_with(it->name, "_seconds"))
			print_duration(f, it->u);
	}
	putc('\n', f);
}

static void print_human(FILE *f, const struct zap_stat_item *items, size_t n)
{
	bool first = true;

	for (size_t g = 0; g < sizeof(group_order) / sizeof(group_order[0]); g++) {
		bool shown = false;

		for (size_t i = 0; i < n; i++) {
			if (strcmp(group_of(items[i].name), group_order[g]))
				continue;
			if (!shown)
				fprintf(f, "%s[%s]\n", first ? "" : "\n", group_order[g]);
			shown = true;
			first = false;
			print_human_item(f, &items[i]);
		}
	}
}

/* --- JSON --- */

static void print_json(FILE *f, const struct zap_stat_item *items, size_t n)
{
	fputs("{\n", f);
	for (size_t i = 0; i < n; i++) {
		const struct zap_stat_item *it = &items[i];

		fputs("  ", f);
		put_json_string(f, it->name);
		fputs(": ", f);
		if (it->type == ZAP_STAT_U64)
			fprintf(f, "%" PRIu64, it->u);
		else if (it->type == ZAP_STAT_DOUBLE && isfinite(it->d))
			fprintf(f, "%.15g", it->d);
		else if (it->type == ZAP_STAT_DOUBLE)
			fputs("null", f);
		else
			put_json_string(f, it->s);
		fputs(i + 1 == n ? "\n" : ",\n", f);
	}
	fputs("}\n", f);
}

/* --- Prometheus --- */

/*
 * The daemon's names, as Prometheus's conventions want them: counters end in
 * _total, units (bytes, seconds, ratio) come last. A name not listed is a
 * gauge under its own name; strings become labels of zappend_info.
 */
static const struct {
	const char *name, *metric;
	bool counter;
} prom_names[] = {
	{ "puts", "puts_total", true },
	{ "gets", "gets_total", true },
	{ "dels", "dels_total", true },
	{ "put_bytes", "put_bytes_total", true },
	{ "get_bytes", "get_bytes_total", true },
	{ "gc_bytes_moved", "gc_moved_bytes_total", true },
	{ "gc_records_moved", "gc_moved_records_total", true },
	{ "gc_tombstones_dropped", "gc_dropped_tombstones_total", true },
	{ "gc_zones_reclaimed", "gc_reclaimed_zones_total", true },
	{ "gc_victims_given_up", "gc_victims_given_up_total", true },
	{ "gc_records_restored", "gc_restored_records_total", true },
	{ "zones_reset", "zone_resets_total", true },
	{ "zone_errors", "zone_errors_total", true },
	{ "batched_appends", "batched_appends_total", true },
	{ "batched_records", "batched_records_total", true },
	{ "batched_holds", "batched_holds_total", true },
	{ "appended_bytes", "appended_bytes_total", true },
	{ "flushes", "flushes_total", true },
	{ "errors", "errors_total", true },
	{ "corrupt_records", "corrupt_records_total", true },
	{ "torn_records", "torn_records_total", true },
	{ "unreadable_bytes", "unreadable_bytes_total", true },
	{ "summary_bytes", "summary_written_bytes_total", true },
	{ "connections_total", "connections_total", true },
	{ "connections_rejected", "connections_rejected_total", true },
	{ "connections_idle_closed", "connections_idle_closed_total", true },
	{ "connections_denied", "connections_denied_total", true },
	{ "bad_frames", "bad_frames_total", true },
	{ "snapshots_dropped", "snapshots_dropped_total", true },
	{ "connections", "connections_open", false },
	{ "zones_total", "zones", false },
	{ "write_amplification", "write_amplification_ratio", false },
	{ "buffer_pool_free", "buffer_pool_free_bytes", false },
	{ "max_value", "max_value_bytes", false },
	{ "max_queued_bytes_per_connection", "max_queued_per_connection_bytes", false },
};

static void prom_name(const char *name, const char **metric, bool *counter)
{
	*metric = name;
	*counter = false;
	for (size_t i = 0; i < sizeof(prom_names) / sizeof(prom_names[0]); i++) {
		if (!strcmp(prom_names[i].name, name)) {
			*metric = prom_names[i].metric;
			*counter = prom_names[i].counter;
			return;
		}
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label_value(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			putc(*s, f);
	}
	putc('"', f);
}

static void print_prom_info(FILE *f, const struct zap_stat_item *items, size_t n)
{
	bool first = true;

	fputs("# HELP zappend_info zappendd's settings and version, as labels.\n"
	      "# TYPE zappend_info gauge\n"
	      "zappend_info{",
	      f);
	for (size_t i = 0; i < n; i++) {
		if (items[i].type != ZAP_STAT_STRING)
			continue;
		fprintf(f, "%s%s=", first ? "" : ",", items[i].name);
		put_label_value(f, items[i].s);
		first = false;
	}
	fputs("} 1\n", f);
}

static void print_prom(FILE *f, const struct zap_stat_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct zap_stat_item *it = &items[i];
		const char *metric;
		bool counter;

		if (it->type == ZAP_STAT_STRING)
			continue;
		prom_name(it->name, &metric, &counter);
		fprintf(f, "# HELP zappend_%s zappendd's %s (zappend-cli stat).\n", metric,
			it->name);
		fprintf(f, "# TYPE zappend_%s %s\n", metric, counter ? "counter" : "gauge");
		if (it->type == ZAP_STAT_U64)
			fprintf(f, "zappend_%s %" PRIu64 "\n", metric, it->u);
		else if (isfinite(it->d))
			fprintf(f, "zappend_%s %.17g\n", metric, it->d);
		else
			fprintf(f, "zappend_%s NaN\n", metric);
	}
	print_prom_info(f, items, n);
}

void stat_print(FILE *f, const struct zap_stat_item *items, size_t n, enum stat_format fmt)
{
	if (fmt == STAT_JSON)
		print_json(f, items, n);
	else if (fmt == STAT_PROMETHEUS)
		print_prom(f, items, n);
	else
		print_human(f, items, n);
}
