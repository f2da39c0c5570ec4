/* bench/mpi.py's MPI program: one timed collective read of a whole object by every rank.
 *
 *   mpi_bench MODE TARGET [HINT=VALUE ...]
 *
 * MODE  romio      MPI_File_read_at_all on TARGET (a file path): rank r reads block r of np
 *       direct     strait_read_at_all, strait_path=direct, block r        (TARGET = s3://b/k)
 *       http       strait_read_at_all, strait_path=http, block r
 *       same       strait_read_all_same over http: every rank gets the whole object
 *       naive      every rank strait_read_at's the whole object over http
 * Buffers are touched before the timer in every mode (an application reuses its buffers), so
 * first-touch page faults are not counted. Prints one JSON line (rank 0): the slowest rank's
 * seconds, bytes delivered in all, and the HTTP requests all ranks sent. */
#include "strait_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The barrier that ends the timed region, without spinning: ranks that finish first must not
 * steal the cores of those still reading (4 ranks and the gateway share 2 cores here). */
static void quiet_barrier(void) {
    MPI_Request rq;
    MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    int done = 0;
    while (!done) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (!done) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, np;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    if (argc < 3) {
        if (!rank) fprintf(stderr, "usage: mpi_bench MODE TARGET [HINT=VALUE...]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *mode = argv[1], *target = argv[2];
    MPI_Info info;
    MPI_Info_create(&info);
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = 0;
        MPI_Info_set(info, argv[i], eq + 1);
    }
    double t = 0;
    unsigned long long delivered = 0, requests = 0;
    int rc = 0;
    if (!strcmp(mode, "romio")) {
        MPI_File fh;
        if (MPI_File_open(MPI_COMM_WORLD, target, MPI_MODE_RDONLY, info, &fh) != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 3);
        MPI_Offset size;
        MPI_File_get_size(fh, &size);
        MPI_Offset s = size * rank / np, e = size * (rank + 1) / np;
        char *buf = malloc((size_t)(e - s) + 1);
        memset(buf, 1, (size_t)(e - s) + 1); /* pre-faulted, as a reused buffer is */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        /* counts are ints: read in pieces of at most 1 GiB */
        for (MPI_Offset p = s; p < e;) {
            int n = (int)(e - p > (1 << 30) ? (1 << 30) : e - p);
            MPI_Status st;
            if (MPI_File_read_at_all(fh, p, buf + (p - s), n, MPI_BYTE, &st) != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 4);
            p += n;
        }
        quiet_barrier();
        t = MPI_Wtime() - t0;
        delivered = (unsigned long long)(e - s);
        MPI_File_close(&fh);
        free(buf);
    } else {
        strait_ctx ctx;
        rc = strait_init(MPI_COMM_WORLD, NULL, NULL, NULL, NULL, info, &ctx);
        strait_file f = NULL;
        if (!rc) rc = strait_open(ctx, target, info, &f);
        if (rc) {
            if (!rank) fprintf(stderr, "%s: %s\n", strait_strerror(rc), strait_last_error());
            MPI_Abort(MPI_COMM_WORLD, 5);
        }
        strait_stat_t st;
        strait_stat(f, &st);
        uint64_t size = st.size, s = size * (uint64_t)rank / (uint64_t)np, e = size * (uint64_t)(rank + 1) / (uint64_t)np;
        int whole = !strcmp(mode, "same") || !strcmp(mode, "naive");
        if (whole) {
            s = 0;
            e = size;
        }
        char *buf = malloc(e - s + 1);
        memset(buf, 1, e - s + 1); /* pre-faulted, as a reused buffer is */
        size_t got = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        uint64_t r0 = strait_requests(ctx);
        double t0 = MPI_Wtime();
        if (!strcmp(mode, "same")) rc = strait_read_all_same(f, s, buf, e - s, &got);
        else if (!strcmp(mode, "naive")) rc = strait_read_at(f, s, buf, e - s, &got);
        else rc = strait_read_at_all(f, s, buf, e - s, &got);
        quiet_barrier();
        t = MPI_Wtime() - t0;
        requests = strait_requests(ctx) - r0;
        delivered = got;
        if (rc) {
            fprintf(stderr, "rank %d: %s: %s\n", rank, strait_strerror(rc), strait_last_error());
            MPI_Abort(MPI_COMM_WORLD, 6);
        }
        strait_close(&f);
        strait_finalize(&ctx);
        free(buf);
    }
    double tmax;
    unsigned long long dsum, rsum;
    MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&delivered, &dsum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&requests, &rsum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (!rank) printf("{\"mode\": \"%s\", \"seconds\": %.6f, \"bytes\": %llu, \"requests\": %llu}\n", mode, tmax, dsum, rsum);
    MPI_Info_free(&info);
    MPI_Finalize();
    return rc;
}
