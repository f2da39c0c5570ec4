/* Strait MPI shim: MPI jobs read (and write) the objects of a Strait gateway collectively.
 *
 * Build with your own mpicc (the MPI ABI differs between Open MPI and MPICH):
 *   make -C mpi-shim MPICC=mpicc                 # -> mpi-shim/build/<mpicc>/libstraitmpi.a + libstrait_mpi_core.a
 *   mpicc prog.c -Impi-shim/include -Lmpi-shim/build/mpicc $(make -s -C mpi-shim libs)
 *
 * Names are s3://bucket/key. Every function returns STRAIT_OK (0) or a STRAIT_ERR_* code.
 * Functions marked COLLECTIVE must be called by every rank of the context's communicator, in the
 * same order; they return the same code on every rank (the largest any rank saw) and never hang
 * because one rank failed. Independent functions report only their own rank's outcome.
 *
 * Data paths, chosen at open, identically on every rank (hint "strait_path"):
 *   direct  the gateway authorizes the caller and leases the object's file-system path and file
 *           identity; every rank opens the file itself (pread) and checks it is the leased file.
 *           The kernel enforces the job's POSIX identity. An open file pins the version: the
 *           gateway never writes a published file in place.
 *   http    ranged GETs with If-Match on the leased ETag; aggregator ranks read and redistribute
 *           through MPI. An object replaced during the read gives STRAIT_ERR_CHANGED everywhere.
 *   auto    (default) direct when every rank sees the leased file, else http.
 *
 * Hints (MPI_Info at init or open; open overrides init):
 *   strait_path        auto | direct | http
 *   cb_nodes           aggregator ranks for collective reads (default: all ranks)
 *   cb_buffer_size     bytes an aggregator reads per round (default 16 MiB)
 *   romio_cb_read      enable | disable | automatic: aggregate read_at_all on the direct path too
 *                      (automatic = disable: each rank preads its own contiguous range)
 *   striping_unit      file-domain alignment in bytes (default: the leased stripe size, else 1 MiB)
 *   strait_http_streams  ranged GETs in flight per rank (default: 8 per node shared by its ranks,
 *                      at least 2)
 *   strait_same_read   bcast | independent: read_all_same reads once and broadcasts (default)
 *                      or every rank reads everything itself
 *   strait_part_size   multipart part size for write_at_all (default 16 MiB, at least 5 MiB)
 *
 * Credentials: arguments, or when NULL the environment: STRAIT_ENDPOINT (or AWS_ENDPOINT_URL),
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_CA_BUNDLE.
 * Only rank 0 talks to the gateway for open and commit; reads use every aggregator. */
#ifndef STRAIT_MPI_H
#define STRAIT_MPI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum strait_err {
    STRAIT_OK = 0,
    STRAIT_ERR_ARG = 1,                /* bad argument, name or hint */
    STRAIT_ERR_NO_SUCH_BUCKET = 2,
    STRAIT_ERR_NO_SUCH_KEY = 3,
    STRAIT_ERR_ACCESS_DENIED = 4,      /* by the gateway's policy, or by the file system */
    STRAIT_ERR_CHANGED = 5,            /* the object was replaced since it was opened */
    STRAIT_ERR_AUTH = 6,               /* credentials refused (unknown key, bad signature, expired) */
    STRAIT_ERR_HTTP = 7,               /* another error answer from the gateway */
    STRAIT_ERR_IO = 8,                 /* a file-system read failed */
    STRAIT_ERR_MPI = 9,
    STRAIT_ERR_NOMEM = 10,
    STRAIT_ERR_EXPIRED = 11,           /* the lease expired before the file was opened */
    STRAIT_ERR_DIRECT_UNAVAILABLE = 12,/* strait_path=direct, but a rank cannot see the file */
    STRAIT_ERR_RANGE = 13,             /* the object ended before the bytes the gateway promised */
    STRAIT_ERR_STATE = 14,             /* wrong call for the handle (read on a write handle...) */
    STRAIT_ERR_NETWORK = 15            /* the gateway could not be reached */
};

enum strait_path { STRAIT_PATH_DIRECT = 1, STRAIT_PATH_HTTP = 2 };

typedef struct strait_ctx_s *strait_ctx;
typedef struct strait_file_s *strait_file;

typedef struct {
    uint64_t size;
    char etag[128];       /* with quotes */
    int path;             /* STRAIT_PATH_DIRECT or STRAIT_PATH_HTTP */
    char fs_type[16];     /* lustre | gpfs | posix ("" if unknown) */
    uint64_t stripe_size; /* bytes */
    uint32_t stripe_count;
} strait_stat_t;

/* COLLECTIVE over comm (duplicated internally). NULL strings: from the environment. */
int strait_init(MPI_Comm comm, const char *endpoint, const char *access_key, const char *secret_key,
                const char *session_token, MPI_Info info, strait_ctx *ctx);
/* COLLECTIVE. Frees the context; *ctx becomes NULL. Close files first. */
int strait_finalize(strait_ctx *ctx);

/* COLLECTIVE: open one object for reading (one lease request by rank 0, broadcast). */
int strait_open(strait_ctx ctx, const char *name, MPI_Info info, strait_file *fh);
/* COLLECTIVE: open n objects with a single lease request. On failure no handle is left open and
 * every fhs[i] is NULL; `failed` (may be NULL) receives the index of the first failing name. */
int strait_open_many(strait_ctx ctx, int n, const char *const names[], MPI_Info info, strait_file fhs[],
                     int *failed);

/* Independent: read up to len bytes at offset (fewer only at the end of the object). */
int strait_read_at(strait_file fh, uint64_t offset, void *buf, size_t len, size_t *nread);
/* COLLECTIVE: every rank reads its own range (ranges may differ, overlap or be empty). */
int strait_read_at_all(strait_file fh, uint64_t offset, void *buf, size_t len, size_t *nread);
/* COLLECTIVE: every rank needs the same range (same offset and len on every rank): it is read
 * once, split among the aggregators, and broadcast. */
int strait_read_all_same(strait_file fh, uint64_t offset, void *buf, size_t len, size_t *nread);

/* Local. */
int strait_stat(strait_file fh, strait_stat_t *st);
/* COLLECTIVE. *fh becomes NULL. Closing a write handle that was not committed aborts it. */
int strait_close(strait_file *fh);

/* COLLECTIVE: create an object for writing (a multipart upload started by rank 0). The object
 * appears only at strait_commit; until then readers see the previous version, if any. */
int strait_create(strait_ctx ctx, const char *name, MPI_Info info, strait_file *fh);
/* COLLECTIVE: every rank writes its range (may be empty); ranges must not overlap, and when
 * committed must cover [0, size) without holes. May be called several times. */
int strait_write_at_all(strait_file fh, uint64_t offset, const void *buf, size_t len);
/* COLLECTIVE: complete the upload; afterwards strait_stat gives the object's size and ETag. */
int strait_commit(strait_file fh);

/* Local: the message of a code. */
const char *strait_strerror(int err);
/* Local: details of the last failure on this rank ("" if none). */
const char *strait_last_error(void);
/* Local: HTTP requests this rank has sent to the gateway so far. */
uint64_t strait_requests(strait_ctx ctx);

#ifdef __cplusplus
}
#endif
#endif
