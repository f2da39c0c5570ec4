/* Strait MPI shim, MPI half: collective open, reads and writes over the Rust I/O core.
 * Compiled with the user's mpicc (see include/strait_mpi.h for the contract).
 *
 * Conventions: every collective entry point computes a local code, then calls agree(), which
 * gives every rank the largest code and the message of the lowest rank that had it. Loops of
 * rounds agree on errors at each round before exchanging data, so no rank waits for a message
 * that a failed rank will never send. */
#define _GNU_SOURCE
#include "strait_mpi.h"
#include "strait_core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 1024
#define BUCKET_MAX 64
#define KEY_MAX 1100
#define TAG_DATA 0x5374
#define MIB (1024ull * 1024ull)
#define PART_MIN (5 * MIB)

static char g_last[MSG_MAX];

static int set_err(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last, sizeof g_last, fmt, ap);
    va_end(ap);
    return code;
}

static int core_err(int code) { return set_err(code, "%s", strait_core_last_error()); }

const char *strait_last_error(void) { return g_last; }

const char *strait_strerror(int err) {
    switch (err) {
    case STRAIT_OK: return "success";
    case STRAIT_ERR_ARG: return "invalid argument";
    case STRAIT_ERR_NO_SUCH_BUCKET: return "no such bucket";
    case STRAIT_ERR_NO_SUCH_KEY: return "no such key";
    case STRAIT_ERR_ACCESS_DENIED: return "access denied";
    case STRAIT_ERR_CHANGED: return "the object was replaced since it was opened";
    case STRAIT_ERR_AUTH: return "credentials refused";
    case STRAIT_ERR_HTTP: return "error answer from the gateway";
    case STRAIT_ERR_IO: return "file-system I/O error";
    case STRAIT_ERR_MPI: return "MPI error";
    case STRAIT_ERR_NOMEM: return "out of memory";
    case STRAIT_ERR_EXPIRED: return "lease expired";
    case STRAIT_ERR_DIRECT_UNAVAILABLE: return "direct path unavailable on some rank";
    case STRAIT_ERR_RANGE: return "object shorter than expected";
    case STRAIT_ERR_STATE: return "wrong call for this handle";
    case STRAIT_ERR_NETWORK: return "gateway unreachable";
    default: return "unknown error";
    }
}

/* ---- hints ------------------------------------------------------------------------------- */

enum { PATH_AUTO = 0 };
enum { CB_AUTO = 0, CB_ENABLE = 1, CB_DISABLE = 2 };

struct hints {
    int path;            /* PATH_AUTO, STRAIT_PATH_DIRECT, STRAIT_PATH_HTTP */
    int cb_nodes;        /* 0 = all ranks */
    uint64_t cb_buffer_size;
    int cb_read;
    uint64_t striping_unit; /* 0 = from the lease */
    int streams; /* 0 = auto: 8 per node, at least 2 per rank */
    int same_bcast;
    uint64_t part_size;
};

static const struct hints DEFAULT_HINTS = {PATH_AUTO, 0, 16 * MIB, CB_AUTO, 0, 0, 1, 16 * MIB};

static int parse_u64(const char *v, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') return -1;
    *out = x;
    return 0;
}

/* Apply the hints of `info` over `h`; STRAIT_ERR_ARG names a bad value. */
static int read_hints(MPI_Info info, struct hints *h) {
    if (info == MPI_INFO_NULL) return STRAIT_OK;
    char v[256];
    int flag = 0;
    uint64_t x;
#define GET(k) (MPI_Info_get(info, (char *)(k), (int)sizeof v - 1, v, &flag) == MPI_SUCCESS && flag)
    if (GET("strait_path")) {
        if (!strcmp(v, "auto")) h->path = PATH_AUTO;
        else if (!strcmp(v, "direct")) h->path = STRAIT_PATH_DIRECT;
        else if (!strcmp(v, "http")) h->path = STRAIT_PATH_HTTP;
        else return set_err(STRAIT_ERR_ARG, "hint strait_path=%s: expected auto, direct or http", v);
    }
    if (GET("cb_nodes")) {
        if (parse_u64(v, &x) || x == 0 || x > 1 << 20) return set_err(STRAIT_ERR_ARG, "hint cb_nodes=%s", v);
        h->cb_nodes = (int)x;
    }
    if (GET("cb_buffer_size")) {
        if (parse_u64(v, &x) || x < 4096 || x > 1024 * MIB)
            return set_err(STRAIT_ERR_ARG, "hint cb_buffer_size=%s: expected 4096 to 1 GiB", v);
        h->cb_buffer_size = x;
    }
    if (GET("romio_cb_read")) {
        if (!strcmp(v, "enable")) h->cb_read = CB_ENABLE;
        else if (!strcmp(v, "disable")) h->cb_read = CB_DISABLE;
        else if (!strcmp(v, "automatic")) h->cb_read = CB_AUTO;
        else return set_err(STRAIT_ERR_ARG, "hint romio_cb_read=%s", v);
    }
    if (GET("striping_unit")) {
        if (parse_u64(v, &x) || x == 0) return set_err(STRAIT_ERR_ARG, "hint striping_unit=%s", v);
        h->striping_unit = x;
    }
    if (GET("strait_http_streams")) {
        if (parse_u64(v, &x) || x == 0 || x > 64) return set_err(STRAIT_ERR_ARG, "hint strait_http_streams=%s: 1 to 64", v);
        h->streams = (int)x;
    }
    if (GET("strait_same_read")) {
        if (!strcmp(v, "bcast")) h->same_bcast = 1;
        else if (!strcmp(v, "independent")) h->same_bcast = 0;
        else return set_err(STRAIT_ERR_ARG, "hint strait_same_read=%s: expected bcast or independent", v);
    }
    if (GET("strait_part_size")) {
        if (parse_u64(v, &x) || x < PART_MIN || x > 1024 * MIB)
            return set_err(STRAIT_ERR_ARG, "hint strait_part_size=%s: expected 5 MiB to 1 GiB", v);
        h->part_size = x;
    }
#undef GET
    return STRAIT_OK;
}

/* ---- context ----------------------------------------------------------------------------- */

struct strait_ctx_s {
    MPI_Comm comm;
    int rank, size;
    strait_core *core;
    struct hints hints;
    /* the ranks sharing this node's memory, and one leader (node rank 0) per node */
    MPI_Comm node, leaders;
    int node_rank, node_size;
    int *leader_of; /* world rank -> leaders-communicator rank of its node */
};

/* Wait for a non-blocking MPI operation without spinning: a rank that waits for others (an
 * aggregator still reading, say) gives its core back, which matters when ranks share cores with
 * each other and with the gateway. A few tests first, so short waits stay short. */
static int polite_wait(MPI_Request *rq) {
    int done = 0;
    for (int i = 0; !done; i++) {
        if (MPI_Test(rq, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return STRAIT_ERR_MPI;
        if (!done && i >= 64) {
            struct timespec ts = {0, i < 1024 ? 20000 : 200000};
            nanosleep(&ts, NULL);
        }
    }
    return STRAIT_OK;
}

static int polite_waitall(int n, MPI_Request *rq) {
    int done = 0;
    for (int i = 0; !done; i++) {
        if (MPI_Testall(n, rq, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) return STRAIT_ERR_MPI;
        if (!done && i >= 64) {
            struct timespec ts = {0, i < 1024 ? 20000 : 200000};
            nanosleep(&ts, NULL);
        }
    }
    return STRAIT_OK;
}

static int polite_barrier(MPI_Comm comm) {
    MPI_Request rq;
    if (MPI_Ibarrier(comm, &rq) != MPI_SUCCESS) return STRAIT_ERR_MPI;
    return polite_wait(&rq);
}

/* Every rank gets the largest code and the message of the lowest rank that had it. */
static int agree(strait_ctx c, int rc) {
    int all = 0;
    MPI_Request rq;
    if (MPI_Iallreduce(&rc, &all, 1, MPI_INT, MPI_MAX, c->comm, &rq) != MPI_SUCCESS || polite_wait(&rq))
        return STRAIT_ERR_MPI;
    if (all == STRAIT_OK) return STRAIT_OK;
    int mine = rc == all ? c->rank : c->size, who = 0;
    MPI_Allreduce(&mine, &who, 1, MPI_INT, MPI_MIN, c->comm);
    char msg[MSG_MAX];
    if (c->rank == who) snprintf(msg, sizeof msg, "%s", g_last);
    MPI_Bcast(msg, MSG_MAX, MPI_CHAR, who, c->comm);
    msg[MSG_MAX - 1] = 0;
    snprintf(g_last, sizeof g_last, "rank %d: %s", who, msg);
    return all;
}

static const char *env2(const char *a, const char *b) {
    const char *v = getenv(a);
    if ((!v || !*v) && b) v = getenv(b);
    return v && *v ? v : NULL;
}

int strait_init(MPI_Comm comm, const char *endpoint, const char *access_key, const char *secret_key,
                const char *session_token, MPI_Info info, strait_ctx *out) {
    if (!out) return set_err(STRAIT_ERR_ARG, "strait_init: NULL ctx");
    *out = NULL;
    strait_ctx c = calloc(1, sizeof *c);
    int rc = c ? STRAIT_OK : set_err(STRAIT_ERR_NOMEM, "strait_init: no memory");
    MPI_Comm dup = MPI_COMM_NULL;
    if (MPI_Comm_dup(comm, &dup) != MPI_SUCCESS) {
        free(c);
        return set_err(STRAIT_ERR_MPI, "MPI_Comm_dup failed");
    }
    struct strait_ctx_s tmp = {dup, 0, 0, NULL, DEFAULT_HINTS, MPI_COMM_NULL, MPI_COMM_NULL, 0, 0, NULL};
    MPI_Comm_rank(dup, &tmp.rank);
    MPI_Comm_size(dup, &tmp.size);
    if (rc == STRAIT_OK) rc = read_hints(info, &tmp.hints);
    if (rc == STRAIT_OK) {
        const char *ep = endpoint ? endpoint : env2("STRAIT_ENDPOINT", "AWS_ENDPOINT_URL");
        const char *ak = access_key ? access_key : env2("AWS_ACCESS_KEY_ID", NULL);
        const char *sk = secret_key ? secret_key : env2("AWS_SECRET_ACCESS_KEY", NULL);
        const char *tok = session_token ? session_token : env2("AWS_SESSION_TOKEN", NULL);
        if (!ep) rc = set_err(STRAIT_ERR_ARG, "no endpoint: pass one or set STRAIT_ENDPOINT");
        else if (!ak || !sk) rc = set_err(STRAIT_ERR_ARG, "no credentials: pass them or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
        else {
            tmp.core = strait_core_new(ep, ak, sk, tok, env2("AWS_REGION", "AWS_DEFAULT_REGION"), env2("AWS_CA_BUNDLE", NULL));
            if (!tmp.core) rc = core_err(STRAIT_ERR_ARG);
        }
    }
    /* Node topology for read_all_same: node communicator, leaders, node of every rank. */
    MPI_Comm_split_type(dup, MPI_COMM_TYPE_SHARED, tmp.rank, MPI_INFO_NULL, &tmp.node);
    MPI_Comm_rank(tmp.node, &tmp.node_rank);
    MPI_Comm_size(tmp.node, &tmp.node_size);
    MPI_Comm_split(dup, tmp.node_rank == 0 ? 0 : MPI_UNDEFINED, tmp.rank, &tmp.leaders);
    int my_leader = -1;
    if (tmp.leaders != MPI_COMM_NULL) MPI_Comm_rank(tmp.leaders, &my_leader);
    MPI_Bcast(&my_leader, 1, MPI_INT, 0, tmp.node);
    tmp.leader_of = malloc(sizeof(int) * (size_t)tmp.size);
    if (!tmp.leader_of && rc == STRAIT_OK) rc = set_err(STRAIT_ERR_NOMEM, "strait_init: no memory");
    if (tmp.leader_of) MPI_Allgather(&my_leader, 1, MPI_INT, tmp.leader_of, 1, MPI_INT, dup);
    else MPI_Allgather(&my_leader, 1, MPI_INT, (int[1]){0}, 0, MPI_INT, dup);
    rc = agree(&tmp, rc);
    if (rc != STRAIT_OK) {
        strait_core_free(tmp.core);
        free(tmp.leader_of);
        if (tmp.leaders != MPI_COMM_NULL) MPI_Comm_free(&tmp.leaders);
        MPI_Comm_free(&tmp.node);
        MPI_Comm_free(&dup);
        free(c);
        return rc;
    }
    *c = tmp;
    *out = c;
    return STRAIT_OK;
}

int strait_finalize(strait_ctx *ctx) {
    if (!ctx || !*ctx) return set_err(STRAIT_ERR_ARG, "strait_finalize: NULL ctx");
    strait_ctx c = *ctx;
    int rc = MPI_Barrier(c->comm) == MPI_SUCCESS ? STRAIT_OK : STRAIT_ERR_MPI;
    strait_core_free(c->core);
    free(c->leader_of);
    if (c->leaders != MPI_COMM_NULL) MPI_Comm_free(&c->leaders);
    MPI_Comm_free(&c->node);
    MPI_Comm_free(&c->comm);
    free(c);
    *ctx = NULL;
    return rc;
}

uint64_t strait_requests(strait_ctx ctx) { return ctx ? strait_core_requests(ctx->core) : 0; }

/* ---- files ------------------------------------------------------------------------------- */

struct part_buf {
    uint32_t number; /* 1-based */
    char *data;
    uint64_t covered;
};

struct part_done {
    uint32_t number;
    char etag[128];
};

struct strait_file_s {
    strait_ctx ctx;
    char bucket[BUCKET_MAX];
    char key[KEY_MAX];
    struct strait_core_lease lease;
    struct hints hints;
    int path;
    int fd;
    int writing, committed;
    /* writing */
    char upload_id[512];
    uint64_t max_end;
    struct part_buf *pending;
    int npending;
    struct part_done *done;
    int ndone, capdone;
};

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static int64_t st_mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000LL + (int64_t)st->st_mtim.tv_nsec;
}

static void free_file(strait_file f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->npending; i++) free(f->pending[i].data);
    free(f->pending);
    free(f->done);
    free(f);
}

static strait_file new_file(strait_ctx c) {
    strait_file f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->ctx = c;
    f->fd = -1;
    f->hints = c->hints;
    return f;
}

/* Whether this rank can read the leased file directly: open, and the same file identity. */
static int try_direct(strait_file f, int64_t expires) {
    const struct strait_core_lease *l = &f->lease;
    if (!l->has_path) return 0;
    if ((int64_t)time(NULL) > expires) return 0;
    int fd = open(l->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_ino != l->ino || (uint64_t)st.st_size != l->size ||
        st_mtime_ns(&st) != l->mtime_ns) {
        close(fd);
        return 0;
    }
    f->fd = fd;
    return 1;
}

int strait_open_many(strait_ctx c, int n, const char *const names[], MPI_Info info, strait_file fhs[], int *failed) {
    if (!c) return set_err(STRAIT_ERR_ARG, "strait_open: NULL ctx");
    if (failed) *failed = -1;
    int rc = STRAIT_OK, first_bad = -1;
    if (n <= 0 || !names || !fhs) rc = set_err(STRAIT_ERR_ARG, "strait_open_many: no names");
    strait_file *fs = rc ? NULL : calloc((size_t)n, sizeof *fs);
    struct strait_core_lease *leases = rc ? NULL : calloc((size_t)n, sizeof *leases);
    const char **buckets = rc ? NULL : calloc((size_t)n, sizeof *buckets);
    const char **keys = rc ? NULL : calloc((size_t)n, sizeof *keys);
    if (!rc && (!fs || !leases || !buckets || !keys)) rc = set_err(STRAIT_ERR_NOMEM, "strait_open: no memory");
    struct hints h = c->hints;
    if (!rc) rc = read_hints(info, &h);
    for (int i = 0; !rc && i < n; i++) {
        fs[i] = new_file(c);
        if (!fs[i]) {
            rc = set_err(STRAIT_ERR_NOMEM, "strait_open: no memory");
            break;
        }
        fs[i]->hints = h;
        if (!names[i] || strait_core_parse_name(names[i], fs[i]->bucket, BUCKET_MAX, fs[i]->key, KEY_MAX)) {
            rc = core_err(STRAIT_ERR_ARG);
            first_bad = i;
            break;
        }
        buckets[i] = fs[i]->bucket;
        keys[i] = fs[i]->key;
    }
    rc = agree(c, rc);
    /* One lease request, by rank 0, for every name; its outcome is agreed before anyone waits
     * for leases that were never fetched. */
    int64_t expires = 0;
    int direct = 0;
    if (!rc) {
        int code = 0;
        if (c->rank == 0) {
            code = strait_core_lease(c->core, n, buckets, keys, leases, &expires, &direct);
            if (code) core_err(code);
        }
        rc = agree(c, code);
        if (!rc) {
            int64_t hdr[2] = {expires, direct};
            MPI_Bcast(hdr, 2, MPI_INT64_T, 0, c->comm);
            MPI_Bcast(leases, (int)((size_t)n * sizeof *leases), MPI_BYTE, 0, c->comm);
            expires = hdr[0];
            direct = (int)hdr[1];
        }
    }
    (void)direct; /* without paths (lease.direct = false) every lease has has_path = 0 */
    free(buckets);
    free(keys);
    for (int i = 0; !rc && i < n; i++) {
        fs[i]->lease = leases[i];
        if (leases[i].code) {
            rc = set_err(leases[i].code, "s3://%s/%s: %s (HTTP %d)", fs[i]->bucket, fs[i]->key,
                         leases[i].s3_code[0] ? leases[i].s3_code : strait_strerror(leases[i].code), leases[i].status);
            first_bad = i;
        }
    }
    /* Choose the path of every file, identically on every rank: one collective for all files. */
    int *ok = NULL;
    if (!rc) {
        ok = calloc((size_t)n, sizeof *ok);
        int *all = calloc((size_t)n, sizeof *all);
        if (!ok || !all) {
            free(ok);
            free(all);
            ok = NULL;
            rc = set_err(STRAIT_ERR_NOMEM, "strait_open: no memory");
        } else {
            for (int i = 0; i < n; i++) ok[i] = fs[i]->hints.path == STRAIT_PATH_HTTP ? 0 : try_direct(fs[i], expires);
            if (MPI_Allreduce(ok, all, n, MPI_INT, MPI_MIN, c->comm) != MPI_SUCCESS) rc = set_err(STRAIT_ERR_MPI, "MPI_Allreduce");
            for (int i = 0; !rc && i < n; i++) {
                strait_file f = fs[i];
                if (all[i]) {
                    f->path = STRAIT_PATH_DIRECT;
                    continue;
                }
                if (f->fd >= 0) close(f->fd);
                f->fd = -1;
                f->path = STRAIT_PATH_HTTP;
                if (f->hints.path == STRAIT_PATH_DIRECT) {
                    int exp = (int64_t)time(NULL) > expires;
                    rc = set_err(exp ? STRAIT_ERR_EXPIRED : STRAIT_ERR_DIRECT_UNAVAILABLE,
                                 "s3://%s/%s: %s", f->bucket, f->key,
                                 !f->lease.has_path ? "the gateway gives no path (lease.direct = false, or a directory marker)"
                                 : exp ? "the lease expired before the file was opened"
                                       : "some rank cannot open the leased file, or sees another file there");
                    first_bad = i;
                }
            }
            free(all);
        }
    }
    free(ok);
    rc = agree(c, rc);
    if (rc) {
        int fb = first_bad < 0 ? c->size : first_bad, agreed = 0;
        MPI_Allreduce(&fb, &agreed, 1, MPI_INT, MPI_MIN, c->comm);
        if (failed) *failed = agreed == c->size ? -1 : agreed;
        for (int i = 0; fs && i < n; i++) free_file(fs[i]);
        for (int i = 0; fhs && i < n; i++) fhs[i] = NULL;
    } else {
        for (int i = 0; i < n; i++) fhs[i] = fs[i];
    }
    free(fs);
    free(leases);
    return rc;
}

int strait_open(strait_ctx ctx, const char *name, MPI_Info info, strait_file *fh) {
    if (!fh) return set_err(STRAIT_ERR_ARG, "strait_open: NULL handle");
    const char *names[1] = {name};
    return strait_open_many(ctx, 1, names, info, fh, NULL);
}

int strait_stat(strait_file f, strait_stat_t *st) {
    if (!f || !st) return set_err(STRAIT_ERR_ARG, "strait_stat: NULL argument");
    memset(st, 0, sizeof *st);
    st->size = f->lease.size;
    memcpy(st->etag, f->lease.etag, sizeof st->etag);
    st->path = f->path;
    memcpy(st->fs_type, f->lease.fs_type, sizeof st->fs_type);
    st->stripe_size = f->lease.stripe_size;
    st->stripe_count = f->lease.stripe_count;
    return STRAIT_OK;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* GETs in flight per rank: the hint, else 8 per node shared by its ranks (at least 2 each) —
 * ranks of one node share its cores and its link to the gateway. */
static int streams_of(strait_file f) {
    if (f->hints.streams > 0) return f->hints.streams;
    int s = 8 / (f->ctx->node_size > 0 ? f->ctx->node_size : 1);
    return s < 2 ? 2 : s;
}

/* http: [off, off+len) as up to `streams` ranges of at least 1 MiB, fetched in parallel. */
static void split_ranges(strait_file f, uint64_t off, char *buf, uint64_t len, uint64_t *offs, uint64_t *lens,
                         void **bufs, int *k) {
    uint64_t nsub = min_u64((uint64_t)streams_of(f), (len + MIB - 1) / MIB);
    if (nsub == 0) nsub = 1;
    uint64_t step = (len + nsub - 1) / nsub;
    *k = 0;
    for (uint64_t p = 0; p < len; p += step, (*k)++) {
        offs[*k] = off + p;
        lens[*k] = min_u64(step, len - p);
        bufs[*k] = buf + p;
    }
}

/* Read exactly len bytes at off (inside the object) by this handle's path. */
static int fetch(strait_file f, uint64_t off, char *buf, uint64_t len) {
    if (len == 0) return STRAIT_OK;
    if (f->path == STRAIT_PATH_DIRECT) {
        uint64_t done = 0;
        while (done < len) {
            ssize_t r = pread(f->fd, buf + done, (size_t)min_u64(len - done, 1ull << 30), (off_t)(off + done));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return set_err(errno == EACCES ? STRAIT_ERR_ACCESS_DENIED : STRAIT_ERR_IO, "pread %s: %s", f->lease.path, strerror(errno));
            if (r == 0) return set_err(STRAIT_ERR_RANGE, "%s ended at %llu, leased size %llu", f->lease.path,
                                       (unsigned long long)(off + done), (unsigned long long)f->lease.size);
            done += (uint64_t)r;
        }
        return STRAIT_OK;
    }
    int k = 0;
    uint64_t offs[64], lens[64];
    void *bufs[64];
    split_ranges(f, off, buf, len, offs, lens, bufs, &k);
    int code = strait_core_get_ranges(f->ctx->core, f->bucket, f->key, f->lease.etag[0] ? f->lease.etag : NULL, k, offs,
                                      lens, bufs, streams_of(f));
    if (code) return core_err(code);
    return STRAIT_OK;
}

/* Start fetching [off, off+len) into buf: over http on the core's own thread (*pending is set,
 * to be finished with strait_core_wait), or on the direct path now. */
static int fetch_start(strait_file f, uint64_t off, char *buf, uint64_t len, strait_core_pending **pending) {
    *pending = NULL;
    if (len == 0 || f->path == STRAIT_PATH_DIRECT) return fetch(f, off, buf, len);
    int k = 0;
    uint64_t offs[64], lens[64];
    void *bufs[64];
    split_ranges(f, off, buf, len, offs, lens, bufs, &k);
    *pending = strait_core_get_ranges_start(f->ctx->core, f->bucket, f->key, f->lease.etag[0] ? f->lease.etag : NULL, k,
                                            offs, lens, bufs, streams_of(f));
    return *pending ? STRAIT_OK : core_err(STRAIT_ERR_NOMEM);
}

static int fetch_wait(strait_core_pending **pending, int rc) {
    if (!*pending) return rc;
    int code = strait_core_wait(*pending);
    *pending = NULL;
    return code ? core_err(code) : rc;
}

/* http: read [off, off+len) (inside the object) as one stream of work: GETs of at most
 * cb_buffer_size bytes straight into buf, strait_http_streams of them in flight, with no pause
 * between rounds (nothing is exchanged, so nothing waits for other ranks). */
static int fetch_pieces(strait_file f, uint64_t off, char *buf, uint64_t len) {
    uint64_t piece = f->hints.cb_buffer_size, p = 0;
    while (p < len) {
        uint64_t offs[64], lens[64];
        void *bufs[64];
        int k = 0;
        for (; k < 64 && p < len; k++) {
            offs[k] = off + p;
            lens[k] = min_u64(piece, len - p);
            bufs[k] = buf + p;
            p += lens[k];
        }
        int code = strait_core_get_ranges(f->ctx->core, f->bucket, f->key, f->lease.etag[0] ? f->lease.etag : NULL, k,
                                          offs, lens, bufs, streams_of(f));
        if (code) return core_err(code);
    }
    return STRAIT_OK;
}

static int by_offset(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether no two of the n gathered (offset, length) ranges overlap; empty ones are ignored.
 * `scratch` holds 2n values. */
static int disjoint(const uint64_t *req, int n, uint64_t *scratch) {
    int m = 0;
    for (int r = 0; r < n; r++)
        if (req[2 * r + 1]) {
            scratch[2 * m] = req[2 * r];
            scratch[2 * m + 1] = req[2 * r + 1];
            m++;
        }
    qsort(scratch, (size_t)m, 2 * sizeof(uint64_t), by_offset);
    for (int i = 1; i < m; i++)
        if (scratch[2 * (i - 1)] + scratch[2 * (i - 1) + 1] > scratch[2 * i]) return 0;
    return 1;
}

/* The bytes of [off, off+len) that exist. */
static uint64_t clamp_len(strait_file f, uint64_t off, uint64_t len) {
    if (off >= f->lease.size) return 0;
    return min_u64(len, f->lease.size - off);
}

int strait_read_at(strait_file f, uint64_t off, void *buf, size_t len, size_t *nread) {
    if (!f || (!buf && len)) return set_err(STRAIT_ERR_ARG, "strait_read_at: NULL argument");
    if (f->writing) return set_err(STRAIT_ERR_STATE, "strait_read_at: handle is open for writing");
    uint64_t n = clamp_len(f, off, len);
    uint64_t chunk = f->hints.cb_buffer_size;
    for (uint64_t p = 0; p < n; p += chunk) {
        int rc = fetch(f, off + p, (char *)buf + p, min_u64(chunk, n - p));
        if (rc) return rc;
    }
    if (nread) *nread = (size_t)n;
    return STRAIT_OK;
}

/* File domains: [lo, hi) split among `naggr` aggregators at multiples of `align`. */
struct domains {
    int naggr;
    uint64_t lo, hi, base, d;
};

static struct domains make_domains(strait_file f, uint64_t lo, uint64_t hi) {
    strait_ctx c = f->ctx;
    struct domains dm;
    dm.naggr = f->hints.cb_nodes > 0 && f->hints.cb_nodes < c->size ? f->hints.cb_nodes : c->size;
    uint64_t align = f->hints.striping_unit;
    if (!align) align = f->lease.stripe_count > 1 || !strcmp(f->lease.fs_type, "lustre") ? f->lease.stripe_size : MIB;
    if (!align) align = MIB;
    dm.lo = lo;
    dm.hi = hi;
    dm.base = lo / align * align;
    uint64_t span = hi > dm.base ? hi - dm.base : 0;
    uint64_t per = (span + (uint64_t)dm.naggr - 1) / (uint64_t)dm.naggr;
    dm.d = (per + align - 1) / align * align;
    if (!dm.d) dm.d = align;
    return dm;
}

static int aggr_rank(const struct domains *dm, int i, int size) { return (int)((int64_t)i * size / dm->naggr); }

static void domain_of(const struct domains *dm, int i, uint64_t *s, uint64_t *e) {
    uint64_t a = dm->base + (uint64_t)i * dm->d, b = a + dm->d;
    *s = max_u64(a, dm->lo);
    *e = min_u64(b, dm->hi);
    if (*e < *s) *e = *s;
}

int strait_read_at_all(strait_file f, uint64_t off, void *buf, size_t len, size_t *nread) {
    if (!f) return set_err(STRAIT_ERR_ARG, "strait_read_at_all: NULL handle");
    strait_ctx c = f->ctx;
    int rc = STRAIT_OK;
    if (!buf && len) rc = set_err(STRAIT_ERR_ARG, "strait_read_at_all: NULL buffer");
    if (f->writing) rc = set_err(STRAIT_ERR_STATE, "strait_read_at_all: handle is open for writing");
    uint64_t mylen = rc ? 0 : clamp_len(f, off, len);
    if (nread) *nread = 0;
    int independent = f->path == STRAIT_PATH_DIRECT && f->hints.cb_read != CB_ENABLE;
    if (independent) {
        if (!rc) rc = strait_read_at(f, off, buf, mylen, NULL);
        rc = agree(c, rc);
        if (!rc && nread) *nread = (size_t)mylen;
        return rc;
    }
    /* Two-phase: gather every rank's range, aggregators read their file domains in rounds of
     * cb_buffer_size and send each rank its part. */
    uint64_t mine[2] = {off, mylen};
    /* the gathered ranges, then room to sort them (disjoint) */
    uint64_t *req = malloc(sizeof(uint64_t) * 4 * (size_t)c->size);
    if (!req && !rc) rc = set_err(STRAIT_ERR_NOMEM, "no memory");
    if ((rc = agree(c, rc))) {
        free(req);
        return rc;
    }
    MPI_Allgather(mine, 2, MPI_UINT64_T, req, 2, MPI_UINT64_T, c->comm);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int r = 0; r < c->size; r++)
        if (req[2 * r + 1]) {
            lo = min_u64(lo, req[2 * r]);
            hi = max_u64(hi, req[2 * r] + req[2 * r + 1]);
        }
    if (hi == 0) {
        free(req);
        return STRAIT_OK;
    }
    /* ROMIO's rule for romio_cb_read=automatic: when no two ranks want the same bytes,
     * aggregation only adds an exchange and a pause per round, so each rank reads its own range
     * (disable forces that, enable forces two-phase). Decided from the gathered ranges, so
     * identically on every rank. */
    if (f->hints.cb_read == CB_DISABLE || (f->hints.cb_read == CB_AUTO && disjoint(req, c->size, req + 2 * c->size))) {
        free(req);
        rc = agree(c, fetch_pieces(f, off, buf, mylen));
        if (!rc && nread) *nread = (size_t)mylen;
        return rc;
    }
    struct domains dm = make_domains(f, lo, hi);
    uint64_t B = f->hints.cb_buffer_size;
    uint64_t rounds = (dm.d + B - 1) / B;
    int me_aggr = -1;
    for (int i = 0; i < dm.naggr; i++)
        if (aggr_rank(&dm, i, c->size) == c->rank) me_aggr = i;
    char *tmp = NULL;
    if (me_aggr >= 0 && !(tmp = malloc(B))) rc = set_err(STRAIT_ERR_NOMEM, "no memory for cb_buffer_size");
    MPI_Request *rq = malloc(sizeof(MPI_Request) * 2 * ((size_t)c->size + (size_t)dm.naggr));
    if (!rq) rc = set_err(STRAIT_ERR_NOMEM, "no memory");
    rc = agree(c, rc);
    for (uint64_t r = 0; !rc && r < rounds; r++) {
        /* this round's window of my domain, trimmed to the bytes somebody wants */
        uint64_t ws = 0, we = 0;
        char *win = tmp;
        if (me_aggr >= 0) {
            uint64_t ds, de;
            domain_of(&dm, me_aggr, &ds, &de);
            uint64_t a = ds + r * B, b = min_u64(a + B, de);
            uint64_t need_s = UINT64_MAX, need_e = 0;
            for (int j = 0; a < b && j < c->size; j++) {
                uint64_t s = max_u64(a, req[2 * j]), e = min_u64(b, req[2 * j] + req[2 * j + 1]);
                if (s < e) {
                    need_s = min_u64(need_s, s);
                    need_e = max_u64(need_e, e);
                }
            }
            if (need_s < need_e) {
                ws = need_s;
                we = need_e;
                /* a window inside my own range is read straight into my buffer (no copy) */
                win = ws >= off && we <= off + mylen ? (char *)buf + (ws - off) : tmp;
                rc = fetch(f, ws, win, we - ws);
            }
        }
        rc = agree(c, rc);
        if (rc) break;
        int nq = 0;
        /* receive my pieces from every aggregator's window of this round */
        for (int i = 0; i < dm.naggr; i++) {
            uint64_t ds, de;
            domain_of(&dm, i, &ds, &de);
            uint64_t a = ds + r * B, b = min_u64(a + B, de);
            uint64_t s = max_u64(a, off), e = min_u64(b, off + mylen);
            if (s >= e || !mylen) continue;
            int src = aggr_rank(&dm, i, c->size);
            if (src == c->rank) {
                if (win != (char *)buf + (ws - off)) memcpy((char *)buf + (s - off), win + (s - ws), e - s);
            }
            else MPI_Irecv((char *)buf + (s - off), (int)(e - s), MPI_BYTE, src, TAG_DATA, c->comm, &rq[nq++]);
        }
        if (me_aggr >= 0 && ws < we) {
            for (int j = 0; j < c->size; j++) {
                if (j == c->rank) continue;
                uint64_t s = max_u64(ws, req[2 * j]), e = min_u64(we, req[2 * j] + req[2 * j + 1]);
                if (s >= e) continue;
                MPI_Isend(win + (s - ws), (int)(e - s), MPI_BYTE, j, TAG_DATA, c->comm, &rq[nq++]);
            }
        }
        if (polite_waitall(nq, rq)) rc = set_err(STRAIT_ERR_MPI, "MPI_Waitall");
    }
    free(tmp);
    free(rq);
    free(req);
    rc = agree(c, rc);
    if (!rc && nread) *nread = (size_t)mylen;
    return rc;
}

int strait_read_all_same(strait_file f, uint64_t off, void *buf, size_t len, size_t *nread) {
    if (!f) return set_err(STRAIT_ERR_ARG, "strait_read_all_same: NULL handle");
    strait_ctx c = f->ctx;
    int rc = STRAIT_OK;
    if (!buf && len) rc = set_err(STRAIT_ERR_ARG, "strait_read_all_same: NULL buffer");
    if (f->writing) rc = set_err(STRAIT_ERR_STATE, "strait_read_all_same: handle is open for writing");
    uint64_t v[4] = {off, (uint64_t)len, ~off, ~(uint64_t)len}, m[4];
    MPI_Allreduce(v, m, 4, MPI_UINT64_T, MPI_MAX, c->comm);
    if (m[0] != ~m[2] || m[1] != ~m[3]) rc = set_err(STRAIT_ERR_ARG, "strait_read_all_same: ranks passed different ranges");
    if (nread) *nread = 0;
    rc = agree(c, rc);
    if (rc) return rc;
    uint64_t n = clamp_len(f, off, len);
    if (!f->hints.same_bcast) {
        rc = agree(c, strait_read_at(f, off, buf, n, NULL));
        if (!rc && nread) *nread = (size_t)n;
        return rc;
    }
    if (n == 0) return STRAIT_OK;
    /* Each byte is read once. Per round, every aggregator fetches its window into its slot of a
     * node-shared segment (MPI_Win_allocate_shared over the node communicator); node leaders
     * pass slots between nodes (MPI_Ibcast among leaders); then every rank copies the round's
     * slots into its own buffer: one memcpy per rank instead of a broadcast's two. */
    struct domains dm = make_domains(f, off, off + n);
    uint64_t B = f->hints.cb_buffer_size, rounds = (dm.d + B - 1) / B;
    int me_aggr = -1;
    for (int i = 0; i < dm.naggr; i++)
        if (aggr_rank(&dm, i, c->size) == c->rank) me_aggr = i;
    MPI_Request *rq = malloc(sizeof(MPI_Request) * (size_t)dm.naggr);
    if (!rq) rc = set_err(STRAIT_ERR_NOMEM, "no memory");
    MPI_Win win = MPI_WIN_NULL;
    char *seg = NULL;
    /* two halves: aggregators fetch round r+1 into one while every rank copies round r out of
     * the other */
    uint64_t half = B * (uint64_t)dm.naggr;
    MPI_Aint segsize = c->node_rank == 0 ? (MPI_Aint)(2 * half) : 0;
    if (MPI_Win_allocate_shared(segsize, 1, MPI_INFO_NULL, c->node, &seg, &win) != MPI_SUCCESS) {
        rc = set_err(STRAIT_ERR_NOMEM, "MPI_Win_allocate_shared of %llu bytes failed", (unsigned long long)segsize);
        win = MPI_WIN_NULL;
    } else {
        MPI_Aint sz;
        int du;
        MPI_Win_shared_query(win, 0, &sz, &du, &seg);
    }
    rc = agree(c, rc);
    int nleaders = 1;
    if (c->leaders != MPI_COMM_NULL) MPI_Comm_size(c->leaders, &nleaders);
    int locked = !rc;
    if (locked) MPI_Win_lock_all(MPI_MODE_NOCHECK, win);
    strait_core_pending *pending = NULL;
    int frc = STRAIT_OK;
#define WINDOW(i, r, a, b)                                                                                             \
    do {                                                                                                               \
        uint64_t ds_, de_;                                                                                             \
        domain_of(&dm, (i), &ds_, &de_);                                                                               \
        (a) = ds_ + (r) * B;                                                                                           \
        (b) = min_u64((a) + B, de_);                                                                                   \
    } while (0)
    if (!rc && me_aggr >= 0) {
        uint64_t a, b;
        WINDOW(me_aggr, 0, a, b);
        if (a < b) frc = fetch_start(f, a, seg + (uint64_t)me_aggr * B, b - a, &pending);
    }
    for (uint64_t r = 0; !rc && r < rounds; r++) {
        char *cur = seg + (r % 2) * half, *next = seg + ((r + 1) % 2) * half;
        rc = fetch_wait(&pending, frc);
        frc = STRAIT_OK;
        MPI_Win_sync(win);
        rc = agree(c, rc);
        if (rc) break;
        MPI_Win_sync(win);
        if (c->leaders != MPI_COMM_NULL && nleaders > 1) {
            int nq = 0;
            for (int i = 0; i < dm.naggr; i++) {
                uint64_t a, b;
                WINDOW(i, r, a, b);
                if (a >= b) continue;
                MPI_Ibcast(cur + (uint64_t)i * B, (int)(b - a), MPI_BYTE, c->leader_of[aggr_rank(&dm, i, c->size)],
                           c->leaders, &rq[nq++]);
            }
            if (polite_waitall(nq, rq)) frc = set_err(STRAIT_ERR_MPI, "MPI_Waitall");
            MPI_Win_sync(win);
        }
        if (polite_barrier(c->node)) frc = set_err(STRAIT_ERR_MPI, "MPI_Ibarrier");
        MPI_Win_sync(win);
        /* The other half was last copied from in round r-1, which every rank finished before the
         * agreement above: it can be refilled now, while this round is copied out. */
        if (me_aggr >= 0 && r + 1 < rounds && frc == STRAIT_OK) {
            uint64_t a, b;
            WINDOW(me_aggr, r + 1, a, b);
            if (a < b) frc = fetch_start(f, a, next + (uint64_t)me_aggr * B, b - a, &pending);
        }
        for (int i = 0; i < dm.naggr; i++) {
            uint64_t a, b;
            WINDOW(i, r, a, b);
            if (a < b) memcpy((char *)buf + (a - off), cur + (uint64_t)i * B, b - a);
        }
    }
#undef WINDOW
    rc = fetch_wait(&pending, rc ? rc : frc);
    if (win != MPI_WIN_NULL) {
        if (locked) MPI_Win_unlock_all(win);
        MPI_Win_free(&win);
    }
    free(rq);
    rc = agree(c, rc);
    if (!rc && nread) *nread = (size_t)n;
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

int strait_create(strait_ctx c, const char *name, MPI_Info info, strait_file *fh) {
    if (!c || !fh) return set_err(STRAIT_ERR_ARG, "strait_create: NULL argument");
    *fh = NULL;
    strait_file f = new_file(c);
    int rc = f ? STRAIT_OK : set_err(STRAIT_ERR_NOMEM, "no memory");
    if (!rc) rc = read_hints(info, &f->hints);
    if (!rc && (!name || strait_core_parse_name(name, f->bucket, BUCKET_MAX, f->key, KEY_MAX))) rc = core_err(STRAIT_ERR_ARG);
    rc = agree(c, rc);
    if (!rc) {
        int code = 0;
        if (c->rank == 0) {
            code = strait_core_mpu_create(c->core, f->bucket, f->key, f->upload_id, sizeof f->upload_id);
            if (code) core_err(code);
        }
        rc = agree(c, code);
    }
    if (!rc) MPI_Bcast(f->upload_id, (int)sizeof f->upload_id, MPI_CHAR, 0, c->comm);
    if (rc) {
        free_file(f);
        return rc;
    }
    f->writing = 1;
    f->path = STRAIT_PATH_HTTP;
    *fh = f;
    return STRAIT_OK;
}

static int part_owner(strait_file f, uint64_t k) {
    strait_ctx c = f->ctx;
    int naggr = f->hints.cb_nodes > 0 && f->hints.cb_nodes < c->size ? f->hints.cb_nodes : c->size;
    return (int)((int64_t)(k % (uint64_t)naggr) * c->size / naggr);
}

static struct part_buf *pending_part(strait_file f, uint32_t number, int create) {
    for (int i = 0; i < f->npending; i++)
        if (f->pending[i].number == number) return &f->pending[i];
    if (!create) return NULL;
    struct part_buf *p = realloc(f->pending, sizeof *p * (size_t)(f->npending + 1));
    if (!p) return NULL;
    f->pending = p;
    char *data = malloc(f->hints.part_size);
    if (!data) return NULL;
    p[f->npending] = (struct part_buf){number, data, 0};
    return &f->pending[f->npending++];
}

static int upload_part(strait_file f, struct part_buf *p, uint64_t len) {
    if (f->ndone == f->capdone) {
        int cap = f->capdone ? 2 * f->capdone : 16;
        struct part_done *d = realloc(f->done, sizeof *d * (size_t)cap);
        if (!d) return set_err(STRAIT_ERR_NOMEM, "no memory");
        f->done = d;
        f->capdone = cap;
    }
    struct part_done *d = &f->done[f->ndone];
    d->number = p->number;
    int code = strait_core_mpu_upload(f->ctx->core, f->bucket, f->key, f->upload_id, p->number, p->data, len, d->etag,
                                      sizeof d->etag);
    if (code) return core_err(code);
    f->ndone++;
    free(p->data);
    *p = f->pending[--f->npending];
    return STRAIT_OK;
}

int strait_write_at_all(strait_file f, uint64_t off, const void *buf, size_t len) {
    if (!f) return set_err(STRAIT_ERR_ARG, "strait_write_at_all: NULL handle");
    strait_ctx c = f->ctx;
    int rc = STRAIT_OK;
    if (!f->writing || f->committed) rc = set_err(STRAIT_ERR_STATE, "strait_write_at_all: not an open write handle");
    if (!buf && len) rc = set_err(STRAIT_ERR_ARG, "strait_write_at_all: NULL buffer");
    uint64_t P = f->hints.part_size;
    if (!rc && (off + len) / P >= 10000) rc = set_err(STRAIT_ERR_ARG, "object larger than 10000 parts of %llu bytes", (unsigned long long)P);
    rc = agree(c, rc);
    if (rc) return rc;
    uint64_t mine[2] = {off, len};
    uint64_t *req = malloc(sizeof(uint64_t) * 2 * (size_t)c->size);
    MPI_Request *rq = malloc(sizeof(MPI_Request) * 2 * ((size_t)c->size + 1) * (size_t)c->size);
    rc = agree(c, req && rq ? STRAIT_OK : set_err(STRAIT_ERR_NOMEM, "no memory"));
    if (rc) {
        free(req);
        free(rq);
        return rc;
    }
    MPI_Allgather(mine, 2, MPI_UINT64_T, req, 2, MPI_UINT64_T, c->comm);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int r = 0; r < c->size; r++)
        if (req[2 * r + 1]) {
            lo = min_u64(lo, req[2 * r]);
            hi = max_u64(hi, req[2 * r] + req[2 * r + 1]);
        }
    if (len) f->max_end = max_u64(f->max_end, off + len);
    if (hi == 0) {
        free(req);
        free(rq);
        return STRAIT_OK;
    }
    /* Rounds of one part per owner: each rank sends the owner of part k its bytes of part k;
     * owners upload parts as soon as they are complete. */
    int naggr = f->hints.cb_nodes > 0 && f->hints.cb_nodes < c->size ? f->hints.cb_nodes : c->size;
    uint64_t k0 = lo / P, k1 = (hi - 1) / P;
    for (uint64_t g = k0; !rc && g <= k1; g += (uint64_t)naggr) {
        int nq = 0;
        for (uint64_t k = g; k <= k1 && k < g + (uint64_t)naggr; k++) {
            uint64_t ps = k * P, pe = ps + P;
            int owner = part_owner(f, k);
            struct part_buf *p = NULL;
            if (owner == c->rank && !(p = pending_part(f, (uint32_t)(k + 1), 1))) {
                rc = set_err(STRAIT_ERR_NOMEM, "no memory for a part");
                break;
            }
            for (int j = 0; j < c->size; j++) {
                uint64_t s = max_u64(ps, req[2 * j]), e = min_u64(pe, req[2 * j] + req[2 * j + 1]);
                if (s >= e) continue;
                if (owner == c->rank) {
                    p->covered += e - s;
                    if (j == c->rank) memcpy(p->data + (s - ps), (const char *)buf + (s - off), e - s);
                    else MPI_Irecv(p->data + (s - ps), (int)(e - s), MPI_BYTE, j, TAG_DATA, c->comm, &rq[nq++]);
                } else if (j == c->rank) {
                    MPI_Isend((const char *)buf + (s - off), (int)(e - s), MPI_BYTE, owner, TAG_DATA, c->comm, &rq[nq++]);
                }
            }
        }
        if (polite_waitall(nq, rq)) rc = set_err(STRAIT_ERR_MPI, "MPI_Waitall");
        for (int i = 0; !rc && i < f->npending;) {
            struct part_buf *p = &f->pending[i];
            if (p->covered > P) rc = set_err(STRAIT_ERR_ARG, "part %u written more than once (overlapping writes)", p->number);
            else if (p->covered == P) rc = upload_part(f, p, P); /* removes p; do not advance */
            else i++;
        }
        rc = agree(c, rc);
    }
    free(req);
    free(rq);
    return agree(c, rc);
}

static int cmp_done(const void *a, const void *b) {
    const struct part_done *x = a, *y = b;
    return x->number < y->number ? -1 : x->number > y->number;
}

int strait_commit(strait_file f) {
    if (!f) return set_err(STRAIT_ERR_ARG, "strait_commit: NULL handle");
    strait_ctx c = f->ctx;
    int rc = !f->writing || f->committed ? set_err(STRAIT_ERR_STATE, "strait_commit: not an open write handle") : 0;
    rc = agree(c, rc);
    if (rc) return rc;
    uint64_t size = 0, P = f->hints.part_size;
    MPI_Allreduce(&f->max_end, &size, 1, MPI_UINT64_T, MPI_MAX, c->comm);
    uint64_t nparts = size ? (size + P - 1) / P : 1;
    /* Owners upload what is left: only the last part may be short; anything else is a hole. */
    for (int i = 0; !rc && i < f->npending;) {
        struct part_buf *p = &f->pending[i];
        uint64_t want = p->number == nparts ? size - (nparts - 1) * P : P;
        if (p->number == nparts && p->covered == want) rc = upload_part(f, p, want);
        else {
            rc = set_err(STRAIT_ERR_ARG, "part %u has %llu of %llu bytes written (holes or overlapping writes)", p->number,
                         (unsigned long long)p->covered, (unsigned long long)want);
            i++;
        }
    }
    if (!rc && size == 0 && c->rank == 0) {
        struct part_buf *p = pending_part(f, 1, 1);
        rc = p ? upload_part(f, p, 0) : set_err(STRAIT_ERR_NOMEM, "no memory");
    }
    rc = agree(c, rc);
    /* Gather every owner's (part, ETag) at rank 0, which completes the upload. */
    int *counts = NULL, *displs = NULL, total = 0;
    struct part_done *all = NULL;
    if (!rc) {
        int nb = f->ndone * (int)sizeof(struct part_done);
        if (c->rank == 0) {
            counts = calloc((size_t)c->size, sizeof *counts);
            displs = calloc((size_t)c->size, sizeof *displs);
        }
        MPI_Gather(&nb, 1, MPI_INT, counts, 1, MPI_INT, 0, c->comm);
        if (c->rank == 0) {
            for (int r = 0; r < c->size; r++) {
                displs[r] = total;
                total += counts[r];
            }
            all = malloc((size_t)total + 1);
        }
        MPI_Gatherv(f->done, nb, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, c->comm);
        int code = 0;
        char etag[128] = "";
        if (c->rank == 0) {
            int np = total / (int)sizeof(struct part_done);
            qsort(all, (size_t)np, sizeof *all, cmp_done);
            for (int i = 0; i < np && !code; i++)
                if (all[i].number != (uint32_t)(i + 1)) code = set_err(STRAIT_ERR_ARG, "part %d was never written (a hole before byte %llu)", i + 1, (unsigned long long)size);
            if (!code && (uint64_t)np != nparts) code = set_err(STRAIT_ERR_ARG, "%d of %llu parts written", np, (unsigned long long)nparts);
            if (!code) {
                uint32_t *nums = malloc(sizeof *nums * (size_t)np);
                const char **tags = malloc(sizeof *tags * (size_t)np);
                if (!nums || !tags) code = set_err(STRAIT_ERR_NOMEM, "no memory");
                for (int i = 0; !code && i < np; i++) {
                    nums[i] = all[i].number;
                    tags[i] = all[i].etag;
                }
                if (!code) {
                    code = strait_core_mpu_complete(c->core, f->bucket, f->key, f->upload_id, np, nums, tags, etag, sizeof etag);
                    if (code) core_err(code);
                }
                free(nums);
                free(tags);
            }
        }
        rc = agree(c, code);
        if (!rc) {
            MPI_Bcast(etag, (int)sizeof etag, MPI_CHAR, 0, c->comm);
            memcpy(f->lease.etag, etag, sizeof f->lease.etag);
            f->lease.size = size;
            f->committed = 1;
        }
    }
    free(counts);
    free(displs);
    free(all);
    return rc;
}

int strait_close(strait_file *fh) {
    if (!fh || !*fh) return set_err(STRAIT_ERR_ARG, "strait_close: NULL handle");
    strait_file f = *fh;
    strait_ctx c = f->ctx;
    int rc = STRAIT_OK;
    if (f->writing && !f->committed && c->rank == 0) {
        int code = strait_core_mpu_abort(c->core, f->bucket, f->key, f->upload_id);
        if (code) rc = core_err(code);
    }
    rc = agree(c, rc);
    free_file(f);
    *fh = NULL;
    return rc;
}
