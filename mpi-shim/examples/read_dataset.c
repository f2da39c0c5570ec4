/* Example: every rank of an MPI job reads its share of one object collectively, then all ranks
 * read the same small header object, through a Strait gateway.
 *
 *   make -C mpi-shim MPICC=mpicc
 *   mpicc mpi-shim/examples/read_dataset.c -Impi-shim/include -Lmpi-shim/build/mpicc \
 *       $(make -s -C mpi-shim libs) -o read_dataset
 *   STRAIT_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
 *       mpirun -np 4 ./read_dataset s3://climate/era5/2020.bin s3://climate/era5/header.json
 */
#include <stdio.h>
#include <stdlib.h>
#include <strait_mpi.h>

static void check(int rc, const char *what) {
    if (rc != STRAIT_OK) {
        /* the same code on every rank: every rank stops here, nobody hangs */
        fprintf(stderr, "%s: %s (%s)\n", what, strait_strerror(rc), strait_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, np;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    if (argc != 3) {
        if (rank == 0) fprintf(stderr, "usage: %s s3://bucket/data s3://bucket/header\n", argv[0]);
        MPI_Finalize();
        return 2;
    }

    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "strait_path", "auto");      /* direct if every rank sees the file */
    MPI_Info_set(info, "cb_buffer_size", "16777216"); /* 16 MiB per aggregator round */

    strait_ctx ctx;
    check(strait_init(MPI_COMM_WORLD, NULL, NULL, NULL, NULL, info, &ctx), "init");

    /* One lease request for both names, by rank 0, broadcast to all. */
    const char *names[2] = {argv[1], argv[2]};
    strait_file fh[2];
    int failed;
    check(strait_open_many(ctx, 2, names, info, fh, &failed), "open");

    strait_stat_t st;
    strait_stat(fh[0], &st);
    uint64_t off = st.size * (uint64_t)rank / (uint64_t)np;
    uint64_t len = st.size * (uint64_t)(rank + 1) / (uint64_t)np - off;
    char *part = malloc(len + 1);
    size_t got;
    check(strait_read_at_all(fh[0], off, part, len, &got), "read_at_all");

    strait_stat_t hs;
    strait_stat(fh[1], &hs);
    char *header = malloc(hs.size + 1);
    check(strait_read_all_same(fh[1], 0, header, hs.size, &got), "read_all_same");
    header[got] = 0;

    if (rank == 0)
        printf("%s: %llu bytes, ETag %s, read by %s; header %zu bytes\n", argv[1], (unsigned long long)st.size,
               st.etag, st.path == STRAIT_PATH_DIRECT ? "pread of the file (direct)" : "ranged GETs (http)", got);

    strait_close(&fh[0]);
    strait_close(&fh[1]);
    strait_finalize(&ctx);
    MPI_Info_free(&info);
    free(part);
    free(header);
    MPI_Finalize();
    return 0;
}
