/*
 * kits.c: the newest health report per kit, its metrics, its status page
 * and the warnings when a kit falls behind or loses data.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kits.h"
#include "log.h"

#define KITS_BUCKETS	256
#define KITS_MAX	(1u << 20)	/* backstop; the keys file bounds it */
#define KITS_METRIC	"flowpost_gateway_kit_"
#define US_PER_S	UINT64_C(1000000)

struct kit {
	struct kit		*next;
	struct kits_view	 v;
	/* warnings, each limited per kit */
	struct log_limit	 lim_lag;
	struct log_limit	 lim_drops;
	struct log_limit	 lim_bad;
};

struct kits {
	pthread_mutex_t	 mu;
	struct kits_params p;
	struct kit	*bucket[KITS_BUCKETS];
	size_t		 n;
};

struct kits *
kits_new(const struct kits_params *p)
{
	struct kits	*k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	if (pthread_mutex_init(&k->mu, NULL) != 0) {
		free(k);
		return NULL;
	}
	k->p = *p;
	return k;
}

void
kits_free(struct kits *k)
{
	struct kit	*t, *next;

	if (k == NULL)
		return;
	for (size_t b = 0; b < KITS_BUCKETS; b++)
		for (t = k->bucket[b]; t != NULL; t = next) {
			next = t->next;
			free(t);
		}
	pthread_mutex_destroy(&k->mu);
	free(k);
}

void
kits_set_params(struct kits *k, const struct kits_params *p)
{
	if (k == NULL)
		return;
	pthread_mutex_lock(&k->mu);
	k->p = *p;
	pthread_mutex_unlock(&k->mu);
}

static unsigned int
kits_hash(const char *id)
{
	uint32_t	h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % KITS_BUCKETS;
}

/* The kit called `id`; created when `create`.  Called locked. */
static struct kit *
kits_find(struct kits *k, const char *id, int create)
{
	struct kit	*t;
	unsigned int	 b = kits_hash(id);
	size_t		 len = strlen(id);

	for (t = k->bucket[b]; t != NULL; t = t->next)
		if (strcmp(t->v.id, id) == 0)
			return t;
	if (!create || len > WIRE_CLIENT_ID_MAX || k->n >= KITS_MAX ||
	    (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	memcpy(t->v.id, id, len + 1);
	t->next = k->bucket[b];
	k->bucket[b] = t;
	k->n++;
	return t;
}

/* Datagrams the kit lost by its own account (what warn_drops watches). */
static uint64_t
kits_drops(const struct health *h)
{
	return h->spool_dropped_datagrams + h->dropped_invalid;
}

/* What one report calls for, decided under the lock, logged after. */
struct kits_verdict {
	int		 bad;		/* health block not understood */
	enum health_err	 err;
	unsigned int	 bad_version;
	int		 lagging;	/* oldest spooled batch over warn_lag */
	uint64_t	 warn_lag_s;
	uint64_t	 oldest_s;
	uint64_t	 spooled;
	int		 dropping;	/* drops grew by warn_drops or more */
	uint64_t	 new_drops;
	uint64_t	 total_drops;
};

/* Takes report `nh` of batch `h` if it is newer than the one kept. */
static void
kits_report(struct kits *k, struct kit *t, const struct wire_header *h,
    const struct health *nh, struct kits_verdict *vd)
{
	struct kits_view	*v = &t->v;
	uint64_t		 before, now;

	/*
	 * Batches arrive in sequence order, but a repeat brings an old
	 * report back: keep a report that is newer by sequence number or by
	 * sealing time (a kit whose clock stepped back still counts up).
	 */
	if (v->have_health && h->seq <= v->health_seq &&
	    h->created_us <= v->health_created_us)
		return;
	if (v->have_health && k->p.warn_drops > 0) {
		before = kits_drops(&v->health);
		now = kits_drops(nh);
		/* counters start again at 0 when the client restarts */
		vd->new_drops = now >= before ? now - before : now;
		if (vd->new_drops >= k->p.warn_drops) {
			vd->dropping = 1;
			vd->total_drops = now;
		}
	}
	if (k->p.warn_lag_s > 0 && nh->spool_oldest_age_s > k->p.warn_lag_s) {
		vd->lagging = 1;
		vd->warn_lag_s = k->p.warn_lag_s;
		vd->oldest_s = nh->spool_oldest_age_s;
		vd->spooled = nh->spool_batches;
	}
	v->health = *nh;
	v->have_health = 1;
	v->health_seq = h->seq;
	v->health_created_us = h->created_us;
}

void
kits_heard(struct kits *k, const struct wire_header *h, const uint8_t *raw,
    size_t raw_len, uint64_t now_us)
{
	struct kits_verdict	 vd;
	struct health		 nh;
	struct kit		*t;
	const uint8_t		*hp = NULL;
	size_t			 hl = 0;
	enum health_err		 e = HEALTH_OK;

	if (k == NULL)
		return;
	memset(&vd, 0, sizeof(vd));
	/* Decoding needs no lock; a batch without a block reports nothing. */
	if (raw != NULL && wire_content_health(raw, raw_len, &hp, &hl) == 0 &&
	    hl > 0)
		e = health_decode(hp, hl, &nh);

	pthread_mutex_lock(&k->mu);
	if ((t = kits_find(k, h->client_id, 1)) == NULL) {
		pthread_mutex_unlock(&k->mu);
		return;
	}
	if (now_us > t->v.heard_us)
		t->v.heard_us = now_us;
	if (h->flags & WIRE_FLAG_HEARTBEAT)
		t->v.heartbeats++;
	if (hl > 0 && e == HEALTH_OK)
		kits_report(k, t, h, &nh, &vd);
	else if (hl > 0) {
		t->v.unreadable++;
		vd.bad = 1;
		vd.err = e;
		vd.bad_version = nh.version;
	}
	pthread_mutex_unlock(&k->mu);

	/* The kit's limiters outlive the lock: kits are never freed early. */
	if (vd.bad)
		log_limited(&t->lim_bad, KITS_WARN_EVERY_S, LOGL_INFO, "kits: "
		    "client %s seq %" PRIu64 ": health block ignored: %s "
		    "(version %u)", h->client_id, h->seq,
		    health_strerror(vd.err), vd.bad_version);
	if (vd.lagging)
		log_limited(&t->lim_lag, KITS_WARN_EVERY_S, LOGL_WARN, "kits: "
		    "client %s is behind: oldest of its %" PRIu64 " spooled "
		    "batches is %" PRIu64 " s old (warn_lag %" PRIu64 " s)",
		    h->client_id, vd.spooled, vd.oldest_s, vd.warn_lag_s);
	if (vd.dropping)
		log_limited(&t->lim_drops, KITS_WARN_EVERY_S, LOGL_WARN,
		    "kits: client %s dropped %" PRIu64 " more datagrams "
		    "(spool limits and invalid input; %" PRIu64 " since it "
		    "started)", h->client_id, vd.new_drops, vd.total_drops);
}

void
kits_forwarded(struct kits *k, const struct wire_header *h, uint64_t now_us)
{
	struct kit	*t;
	uint64_t	 lag = now_us > h->created_us ? now_us - h->created_us : 0;
	uint64_t	 warn_s;

	if (k == NULL)
		return;
	pthread_mutex_lock(&k->mu);
	warn_s = k->p.warn_lag_s;
	if ((t = kits_find(k, h->client_id, 1)) != NULL) {
		t->v.have_lag = 1;
		t->v.lag_us = lag;
	}
	pthread_mutex_unlock(&k->mu);
	if (t != NULL && warn_s > 0 && lag > warn_s * US_PER_S)
		log_limited(&t->lim_lag, KITS_WARN_EVERY_S, LOGL_WARN, "kits: "
		    "client %s is behind: batch %" PRIu64 " forwarded %" PRIu64
		    " s after it was sealed (warn_lag %" PRIu64 " s)",
		    h->client_id, h->seq, lag / US_PER_S, warn_s);
}

int
kits_get(struct kits *k, const char *id, struct kits_view *out)
{
	struct kit	*t;
	int		 rc = -1;

	pthread_mutex_lock(&k->mu);
	if ((t = kits_find(k, id, 0)) != NULL) {
		*out = t->v;
		rc = 0;
	}
	pthread_mutex_unlock(&k->mu);
	return rc;
}

static int
kits_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kits_view *)a)->id,
	    ((const struct kits_view *)b)->id);
}

/* A copy of every kit, sorted by id; *n is 0 and NULL for none. */
static int
kits_snapshot(struct kits *k, struct kits_view **out, size_t *n)
{
	struct kits_view	*v = NULL;
	struct kit		*t;
	size_t			 i = 0;

	pthread_mutex_lock(&k->mu);
	if (k->n > 0 && (v = calloc(k->n, sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&k->mu);
		return -1;
	}
	for (size_t b = 0; b < KITS_BUCKETS; b++)
		for (t = k->bucket[b]; t != NULL; t = t->next)
			v[i++] = t->v;
	pthread_mutex_unlock(&k->mu);
	if (i > 1)
		qsort(v, i, sizeof(*v), kits_cmp);
	*out = v;
	*n = i;
	return 0;
}

/* Appends to `b`; sets *err for good when it does not fit. */
static void	kits_printf(struct buf *, int *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
kits_printf(struct buf *b, int *err, const char *fmt, ...)
{
	va_list	 ap;

	if (*err)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(b, fmt, ap) == -1)
		*err = 1;
	va_end(ap);
}

/* Microseconds as seconds with three decimals. */
#define KITS_SEC(us)	(unsigned long long)((us) / US_PER_S), \
			(unsigned int)((us) % US_PER_S / 1000)

static uint64_t
kits_since(uint64_t now_us, uint64_t then_us)
{
	return now_us > then_us ? now_us - then_us : 0;
}

/* The health fields that are plain numbers, for metrics and JSON. */
static const struct {
	const char	*metric;	/* after KITS_METRIC */
	const char	*type;
	const char	*json;
	size_t		 off;		/* in struct health */
	uint32_t	 flag;		/* HEALTH_F_* that makes it real, or 0 */
	const char	*help;
} kits_fields[] = {
#define F(m, t, j, f, fl, h) { m, t, j, offsetof(struct health, f), fl, h }
	F("uptime_seconds", "gauge", "uptime_s", uptime_s, 0,
	    "seconds the kit's client process has run"),
	F("spool_batches", "gauge", "spool_batches", spool_batches, 0,
	    "batches waiting in the kit's spool"),
	F("spool_bytes", "gauge", "spool_bytes", spool_bytes, 0,
	    "bytes waiting in the kit's spool"),
	F("spool_oldest_age_seconds", "gauge", "spool_oldest_age_s",
	    spool_oldest_age_s, 0,
	    "age of the oldest batch in the kit's spool (0 when empty)"),
	F("spool_dropped_batches_total", "counter", "spool_dropped_batches",
	    spool_dropped_batches, 0,
	    "batches the kit dropped (spool limits, write errors)"),
	F("spool_dropped_datagrams_total", "counter",
	    "spool_dropped_datagrams", spool_dropped_datagrams, 0,
	    "datagrams in batches the kit dropped"),
	F("dropped_invalid_total", "counter", "dropped_invalid",
	    dropped_invalid, 0,
	    "datagrams the kit dropped as not NetFlow/IPFIX"),
	F("dropped_backpressure_total", "counter", "dropped_backpressure",
	    dropped_backpressure, 0,
	    "datagrams the kit dropped because sealing fell behind"),
	F("kernel_drops_total", "counter", "kernel_drops", kernel_drops,
	    HEALTH_F_KDROPS,
	    "datagrams the kit's kernel dropped (UDP receive queue full)"),
	F("upstream_gaps_total", "counter", "upstream_gaps", upstream_gaps,
	    HEALTH_F_LOSS, "sequence gaps in the exporters' datagrams"),
	F("upstream_lost_records_total", "counter", "upstream_lost_records",
	    upstream_lost_records, HEALTH_F_LOSS,
	    "flow records lost before the kit (v5, IPFIX sequence gaps)"),
	F("upstream_lost_packets_total", "counter", "upstream_lost_packets",
	    upstream_lost_packets, HEALTH_F_LOSS,
	    "export packets lost before the kit (v9 sequence gaps)"),
	F("retries_since_success", "gauge", "retries_since_success",
	    retries_since_success, 0,
	    "failed POSTs since the kit's last delivered batch"),
#undef F
};

#define KITS_NFIELDS	(sizeof(kits_fields) / sizeof(kits_fields[0]))

static uint64_t
kits_field(const struct health *h, size_t i)
{
	uint64_t	v;

	memcpy(&v, (const uint8_t *)h + kits_fields[i].off, sizeof(v));
	return v;
}

static int
kits_field_known(const struct health *h, size_t i)
{
	return kits_fields[i].flag == 0 || (h->flags & kits_fields[i].flag);
}

static void
kits_head(struct buf *b, int *err, const char *name, const char *type,
    const char *help)
{
	kits_printf(b, err, "# HELP " KITS_METRIC "%s %s\n# TYPE " KITS_METRIC
	    "%s %s\n", name, help, name, type);
}

int
kits_metrics(struct kits *k, uint64_t now_us, struct buf *out)
{
	struct kits_view	*v = NULL;
	const struct health	*h;
	size_t			 n, i, f;
	int			 err = 0;
	int64_t			 off;

	if (kits_snapshot(k, &v, &n) == -1)
		return -1;

	kits_head(out, &err, "last_heard_seconds", "gauge",
	    "seconds since the kit's last authenticated batch");
	for (i = 0; i < n; i++)
		kits_printf(out, &err, KITS_METRIC "last_heard_seconds"
		    "{client=\"%s\"} %llu.%03u\n", v[i].id,
		    KITS_SEC(kits_since(now_us, v[i].heard_us)));
	kits_head(out, &err, "heartbeats_total", "counter",
	    "heartbeat batches authenticated from the kit");
	for (i = 0; i < n; i++)
		kits_printf(out, &err, KITS_METRIC "heartbeats_total"
		    "{client=\"%s\"} %llu\n", v[i].id,
		    (unsigned long long)v[i].heartbeats);
	kits_head(out, &err, "health_unreadable_total", "counter",
	    "health blocks from the kit that were not understood");
	for (i = 0; i < n; i++)
		kits_printf(out, &err, KITS_METRIC "health_unreadable_total"
		    "{client=\"%s\"} %llu\n", v[i].id,
		    (unsigned long long)v[i].unreadable);
	kits_head(out, &err, "batch_lag_seconds", "gauge",
	    "time from sealing to forwarding of the kit's last forwarded "
	    "batch");
	for (i = 0; i < n; i++)
		if (v[i].have_lag)
			kits_printf(out, &err, KITS_METRIC "batch_lag_seconds"
			    "{client=\"%s\"} %llu.%03u\n", v[i].id,
			    KITS_SEC(v[i].lag_us));

	/* From here on only kits that sent a health block. */
	kits_head(out, &err, "report_age_seconds", "gauge",
	    "time since the kit sealed the health report shown");
	for (i = 0; i < n; i++)
		if (v[i].have_health)
			kits_printf(out, &err, KITS_METRIC "report_age_seconds"
			    "{client=\"%s\"} %llu.%03u\n", v[i].id,
			    KITS_SEC(kits_since(now_us,
			    v[i].health_created_us)));
	kits_head(out, &err, "info", "gauge",
	    "the kit's client version and current way out to the gateway");
	for (i = 0; i < n; i++)
		if (v[i].have_health)
			kits_printf(out, &err, KITS_METRIC "info{client=\"%s\","
			    "version=\"%s\",route=\"%s\"} 1\n", v[i].id,
			    v[i].health.client_version, v[i].health.route);
	for (f = 0; f < KITS_NFIELDS; f++) {
		kits_head(out, &err, kits_fields[f].metric,
		    kits_fields[f].type, kits_fields[f].help);
		for (i = 0; i < n; i++) {
			h = &v[i].health;
			if (v[i].have_health && kits_field_known(h, f))
				kits_printf(out, &err, KITS_METRIC "%s"
				    "{client=\"%s\"} %llu\n",
				    kits_fields[f].metric, v[i].id,
				    (unsigned long long)kits_field(h, f));
		}
	}
	kits_head(out, &err, "clock_offset_seconds", "gauge",
	    "the gateway's clock minus the kit's, from HTTP Date (+-1 s)");
	for (i = 0; i < n; i++) {
		h = &v[i].health;
		if (!v[i].have_health || !(h->flags & HEALTH_F_CLOCK))
			continue;
		off = h->clock_offset_ms;
		kits_printf(out, &err, KITS_METRIC "clock_offset_seconds"
		    "{client=\"%s\"} %s%llu.%03u\n", v[i].id, off < 0 ? "-" : "",
		    (unsigned long long)((off < 0 ? -(uint64_t)off :
		    (uint64_t)off) / 1000), (unsigned int)((off < 0 ?
		    -(uint64_t)off : (uint64_t)off) % 1000));
	}
	free(v);
	return err ? -1 : 0;
}

/* A JSON string; ids and health strings are plain, but be safe anyway. */
static void
kits_json_str(struct buf *b, int *err, const char *s)
{
	kits_printf(b, err, "\"");
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			kits_printf(b, err, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			kits_printf(b, err, "\\u%04x", c);
		else
			kits_printf(b, err, "%c", c);
	}
	kits_printf(b, err, "\"");
}

static void
kits_json_health(struct buf *b, int *err, const struct kits_view *v,
    uint64_t now_us)
{
	const struct health	*h = &v->health;

	kits_printf(b, err, "{\"version\":%u,\"seq\":%llu,\"report_age_s\":"
	    "%llu.%03u,\"client_version\":", (unsigned int)h->version,
	    (unsigned long long)v->health_seq,
	    KITS_SEC(kits_since(now_us, v->health_created_us)));
	kits_json_str(b, err, h->client_version);
	kits_printf(b, err, ",\"route\":");
	kits_json_str(b, err, h->route);
	for (size_t f = 0; f < KITS_NFIELDS; f++) {
		if (kits_field_known(h, f))
			kits_printf(b, err, ",\"%s\":%llu", kits_fields[f].json,
			    (unsigned long long)kits_field(h, f));
		else
			kits_printf(b, err, ",\"%s\":null",
			    kits_fields[f].json);
	}
	if (h->flags & HEALTH_F_CLOCK)
		kits_printf(b, err, ",\"clock_offset_ms\":%lld}",
		    (long long)h->clock_offset_ms);
	else
		kits_printf(b, err, ",\"clock_offset_ms\":null}");
}

int
kits_status_json(struct kits *k, uint64_t now_us, struct buf *out)
{
	struct kits_view	*v = NULL;
	size_t			 n, i;
	int			 err = 0;

	buf_reset(out);
	if (kits_snapshot(k, &v, &n) == -1)
		return -1;
	kits_printf(out, &err, "{\"clients\":[");
	for (i = 0; i < n; i++) {
		kits_printf(out, &err, "%s{\"id\":", i > 0 ? "," : "");
		kits_json_str(out, &err, v[i].id);
		kits_printf(out, &err, ",\"last_heard_s\":%llu.%03u,"
		    "\"heartbeats\":%llu,\"health_unreadable\":%llu,"
		    "\"batch_lag_s\":",
		    KITS_SEC(kits_since(now_us, v[i].heard_us)),
		    (unsigned long long)v[i].heartbeats,
		    (unsigned long long)v[i].unreadable);
		if (v[i].have_lag)
			kits_printf(out, &err, "%llu.%03u",
			    KITS_SEC(v[i].lag_us));
		else
			kits_printf(out, &err, "null");
		kits_printf(out, &err, ",\"health\":");
		if (v[i].have_health)
			kits_json_health(out, &err, &v[i], now_us);
		else
			kits_printf(out, &err, "null");
		kits_printf(out, &err, "}");
	}
	kits_printf(out, &err, "]}\n");
	free(v);
	return err ? -1 : 0;
}
