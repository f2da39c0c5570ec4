/* Strait MPI shim: the C ABI of the Rust I/O core (mpi-shim/src/lib.rs). Internal to the shim:
 * programs use strait_mpi.h. No MPI in here; every function is thread-safe. Strings are UTF-8,
 * NUL-terminated; functions returning int return 0 or a STRAIT_ERR_* code, with a message in
 * strait_core_last_error() (per thread). */
#ifndef STRAIT_CORE_H
#define STRAIT_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strait_core strait_core;

/* One object of a lease answer (layout shared with the Rust core: keep in sync). */
struct strait_core_lease {
    int32_t status;        /* HTTP status a GET would answer: 200 = readable */
    int32_t code;          /* STRAIT_ERR_* for that status, 0 when readable */
    uint64_t size;
    uint64_t dev;
    uint64_t ino;
    int64_t mtime_ns;
    uint64_t stripe_size;
    uint32_t stripe_count;
    int32_t has_path;      /* path holds the file-system path (direct reading possible) */
    char etag[128];        /* with quotes, as in HTTP */
    char fs_type[16];      /* lustre | gpfs | posix */
    char s3_code[64];      /* S3 error code when status != 200 */
    char path[4096];
};

const char *strait_core_last_error(void);
strait_core *strait_core_new(const char *endpoint, const char *access_key, const char *secret_key,
                             const char *session_token, const char *region, const char *ca_file);
void strait_core_free(strait_core *c);
uint64_t strait_core_requests(const strait_core *c);
int strait_core_lease(const strait_core *c, int n, const char *const *buckets, const char *const *keys,
                      struct strait_core_lease *out, int64_t *expires_unix, int *direct);
int strait_core_get_ranges(const strait_core *c, const char *bucket, const char *key, const char *if_match,
                           int n, const uint64_t *offsets, const uint64_t *lengths, void *const *bufs,
                           int streams);
/* The same reads on a background thread: returns at once (NULL on a bad argument); the client
 * and buffers must stay valid and untouched until strait_core_wait, called exactly once. */
typedef struct strait_core_pending strait_core_pending;
strait_core_pending *strait_core_get_ranges_start(const strait_core *c, const char *bucket, const char *key,
                                                  const char *if_match, int n, const uint64_t *offsets,
                                                  const uint64_t *lengths, void *const *bufs, int streams);
int strait_core_wait(strait_core_pending *p);
int strait_core_mpu_create(const strait_core *c, const char *bucket, const char *key, char *id_out, size_t cap);
int strait_core_mpu_upload(const strait_core *c, const char *bucket, const char *key, const char *upload_id,
                           uint32_t part, const void *data, uint64_t len, char *etag_out, size_t cap);
int strait_core_mpu_complete(const strait_core *c, const char *bucket, const char *key, const char *upload_id,
                             int n, const uint32_t *parts, const char *const *etags, char *etag_out, size_t cap);
int strait_core_mpu_abort(const strait_core *c, const char *bucket, const char *key, const char *upload_id);
int strait_core_parse_name(const char *name, char *bucket, size_t bcap, char *key, size_t kcap);

#ifdef __cplusplus
}
#endif
#endif
