/* Test driver for the MPI shim (tests/e2e/test_mpi.py runs it under mpirun -np 4).
 *
 *   mpi_check OP NAME OUTDIR [HINT=VALUE ...]
 *
 * OP: read_at_all (rank r reads block r of np; the last block asks for 4096 bytes past the end),
 *     overlap     (rank r reads blocks r and r+1: overlapping ranges),
 *     read_at     (independent reads of block r),
 *     same        (every rank reads the whole object with strait_read_all_same),
 *     naive       (every rank reads the whole object with strait_read_at),
 *     open_many   (NAME is a comma-separated list; one open for all; stat each),
 *     changed     (open, then rank 0 prints READY and waits until OUTDIR/go exists, then
 *                  read_at_all),
 *     write       (NAME is created with write_at_all: rank r writes block r of a pattern of
 *                  HINT size=N bytes, in two calls; then commit),
 *     open        (open only).
 * Every rank writes what it read to OUTDIR/rank<r>.bin and prints one JSON line with its
 * outcome, which the test checks byte for byte against the object. */
#include "strait_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rank, np;
static char outdir[4096];

static void report(const char *op, int rc, strait_ctx ctx, strait_file f, uint64_t off, uint64_t nread) {
    strait_stat_t st;
    memset(&st, 0, sizeof st);
    if (f) strait_stat(f, &st);
    char etag[300] = "";
    for (size_t i = 0, j = 0; st.etag[i] && j + 2 < sizeof etag; i++) {
        if (st.etag[i] == '"') etag[j++] = '\\';
        etag[j++] = st.etag[i];
    }
    char err[2048] = "";
    const char *le = rc ? strait_last_error() : "";
    for (size_t i = 0, j = 0; le[i] && j + 2 < sizeof err; i++) {
        if (le[i] == '"' || le[i] == '\\') err[j++] = '\\';
        err[j++] = le[i] == '\n' ? ' ' : le[i];
    }
    printf("{\"rank\": %d, \"op\": \"%s\", \"rc\": %d, \"error\": \"%s\", \"strerror\": \"%s\", \"path\": %d, "
           "\"size\": %llu, \"etag\": \"%s\", \"offset\": %llu, \"nread\": %llu, \"requests\": %llu, "
           "\"fs_type\": \"%s\", \"stripe_size\": %llu}\n",
           rank, op, rc, err, strait_strerror(rc), st.path, (unsigned long long)st.size, etag,
           (unsigned long long)off, (unsigned long long)nread,
           (unsigned long long)(ctx ? strait_requests(ctx) : 0), st.fs_type, (unsigned long long)st.stripe_size);
    fflush(stdout);
}

static void save(const void *buf, uint64_t n) {
    char p[4200];
    snprintf(p, sizeof p, "%s/rank%d.bin", outdir, rank);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) {
        fprintf(stderr, "rank %d: cannot write %s\n", rank, p);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    fclose(f);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    if (argc < 4) {
        if (!rank) fprintf(stderr, "usage: mpi_check OP NAME OUTDIR [HINT=VALUE...]\n");
        MPI_Finalize();
        return 2;
    }
    const char *op = argv[1], *name = argv[2];
    snprintf(outdir, sizeof outdir, "%s", argv[3]);
    MPI_Info info;
    MPI_Info_create(&info);
    uint64_t wsize = 0;
    for (int i = 4; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = 0;
        if (!strcmp(argv[i], "size")) wsize = strtoull(eq + 1, NULL, 10);
        else MPI_Info_set(info, argv[i], eq + 1);
    }
    strait_ctx ctx = NULL;
    int rc = strait_init(MPI_COMM_WORLD, NULL, NULL, NULL, NULL, info, &ctx);
    if (rc) {
        report("init", rc, NULL, NULL, 0, 0);
        MPI_Finalize();
        return 0; /* the outcome is in the report */
    }
    strait_file f = NULL;
    if (!strcmp(op, "open_many")) {
        char *list = strdup(name);
        const char *names[64];
        int n = 0;
        for (char *t = strtok(list, ","); t && n < 64; t = strtok(NULL, ",")) names[n++] = t;
        strait_file fs[64];
        int failed = -2;
        rc = strait_open_many(ctx, n, names, MPI_INFO_NULL, fs, &failed);
        for (int i = 0; !rc && i < n; i++) {
            report("open_many", rc, ctx, fs[i], (uint64_t)i, 0);
            strait_close(&fs[i]);
        }
        if (rc) {
            printf("{\"rank\": %d, \"op\": \"open_many\", \"rc\": %d, \"failed\": %d, \"requests\": %llu}\n", rank, rc,
                   failed, (unsigned long long)strait_requests(ctx));
        }
        free(list);
        strait_finalize(&ctx);
        MPI_Finalize();
        return 0;
    }
    if (!strcmp(op, "write")) {
        rc = strait_create(ctx, name, info, &f);
        uint64_t s = wsize * (uint64_t)rank / (uint64_t)np, e = wsize * (uint64_t)(rank + 1) / (uint64_t)np;
        unsigned char *buf = malloc(e - s + 1);
        for (uint64_t i = s; i < e; i++) buf[i - s] = (unsigned char)((i * 2654435761ull) >> 13);
        uint64_t half = (e - s) / 2;
        if (!rc) rc = strait_write_at_all(f, s, buf, half);
        if (!rc) rc = strait_write_at_all(f, s + half, buf + half, e - s - half);
        if (!rc) rc = strait_commit(f);
        report("write", rc, ctx, f, s, e - s);
        if (f) strait_close(&f);
        free(buf);
        strait_finalize(&ctx);
        MPI_Finalize();
        return 0;
    }
    rc = strait_open(ctx, name, info, &f);
    if (rc || !strcmp(op, "open")) {
        report("open", rc, ctx, f, 0, 0);
        if (f) strait_close(&f);
        strait_finalize(&ctx);
        MPI_Finalize();
        return 0;
    }
    strait_stat_t st;
    strait_stat(f, &st);
    uint64_t S = st.size, off = 0, len = 0;
    size_t nread = 0;
    if (!strcmp(op, "read_at_all") || !strcmp(op, "read_at") || !strcmp(op, "changed")) {
        off = S * (uint64_t)rank / (uint64_t)np;
        len = S * (uint64_t)(rank + 1) / (uint64_t)np - off + (rank == np - 1 ? 4096 : 0);
    } else if (!strcmp(op, "overlap")) {
        off = S * (uint64_t)rank / (uint64_t)np;
        len = S * (uint64_t)(rank + 2) / (uint64_t)np - off;
    } else {
        off = 0;
        len = S;
    }
    char *buf = malloc(len + 1);
    if (!buf) MPI_Abort(MPI_COMM_WORLD, 4);
    if (!strcmp(op, "changed")) {
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0) {
            char go[4200];
            snprintf(go, sizeof go, "%s/go", outdir);
            printf("READY\n");
            fflush(stdout);
            struct stat sb;
            for (int i = 0; i < 6000 && stat(go, &sb) != 0; i++) usleep(10000);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        rc = strait_read_at_all(f, off, buf, len, &nread);
    } else if (!strcmp(op, "read_at_all") || !strcmp(op, "overlap")) {
        rc = strait_read_at_all(f, off, buf, len, &nread);
    } else if (!strcmp(op, "read_at")) {
        rc = strait_read_at(f, off, buf, len, &nread);
    } else if (!strcmp(op, "same")) {
        rc = strait_read_all_same(f, off, buf, len, &nread);
    } else if (!strcmp(op, "naive")) {
        rc = strait_read_at(f, off, buf, len, &nread);
    } else {
        if (!rank) fprintf(stderr, "unknown op %s\n", op);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (!rc) save(buf, nread);
    report(op, rc, ctx, f, off, nread);
    free(buf);
    int crc = strait_close(&f);
    if (crc && !rc) report("close", crc, ctx, NULL, 0, 0);
    MPI_Info_free(&info);
    strait_finalize(&ctx);
    MPI_Finalize();
    return 0;
}
