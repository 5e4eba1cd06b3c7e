// fp32 GEMM throughput of one library at the shapes of bench/cpu_train.sh's model (B*T = 2048 rows, dim 256,
// ffn 688, byte vocabulary) plus a 1024^3 square, row-major, as the CPU backend calls it. Built once per
// library by bench/cpu_gemm_libs.sh: -DGEMM_DNNL for oneDNN's dnnl_sgemm, -DGEMM_PREFIX for the
// scipy-openblas wheel's prefixed CBLAS, else plain CBLAS (OpenBLAS, BLIS). Prints one JSON line per shape:
// the best of 7 timed rounds of at least 0.15 s each (on a shared machine others only ever slow a run down).
//   gemm_libs LIBRARY all|single    all: the whole-batch shapes (run with the thread count under test);
//                                   single: attention's per-head shapes (run with 1 thread, as the backend
//                                   calls them inside its own parallel regions)
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef GEMM_DNNL
#include <oneapi/dnnl/dnnl.h>
#else
#include <cblas.h>
#ifdef GEMM_PREFIX
#define cblas_sgemm scipy_cblas_sgemm
#endif
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// C[M,N] = op(A) op(B), op(A) [M,K], op(B) [K,N], ld = the stored row length (lda_min/ldb_min raise it to
// model the strided per-head views attention multiplies)
static void gemm(int ta, int tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                 float *c) {
#ifdef GEMM_DNNL
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
#else
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                a, lda, b, ldb, 0.0f, c, N);
#endif
}

int main(int argc, char **argv) {
    const char *lib = argc > 1 ? argv[1] : "?";
    int single = argc > 2 && argv[2][0] == 's';
    static const struct {
        const char *name;
        int M, N, K, ta, tb, ld; // ld > 0: the stored row length of A and B (a strided view), 1 thread
    } shapes[] = {
        {"square 1024", 1024, 1024, 1024, 0, 0, 0},       {"qkv forward", 2048, 768, 256, 0, 1, 0},
        {"attn_output forward", 2048, 256, 256, 0, 1, 0}, {"gate+up forward", 2048, 1376, 256, 0, 1, 0},
        {"ffn_down forward", 2048, 256, 688, 0, 1, 0},    {"ffn_down dX", 2048, 688, 256, 0, 0, 0},
        {"ffn_down dW", 256, 688, 2048, 1, 0, 0},         {"attn_output dW", 256, 256, 2048, 1, 0, 0},
        {"head forward", 2048, 259, 256, 0, 1, 0},        {"attention scores", 64, 256, 32, 0, 1, 768},
        {"attention P V", 64, 32, 256, 0, 0, 768},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        if ((shapes[s].ld > 0) != single) continue;
        int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K, ta = shapes[s].ta, tb = shapes[s].tb;
        int lda = ta ? M : K, ldb = tb ? K : N;
        if (shapes[s].ld > 0) lda = ldb = shapes[s].ld;
        size_t na = (size_t)(ta ? K : M) * (size_t)lda, nb = (size_t)(tb ? N : K) * (size_t)ldb;
        float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
        float *c = malloc((size_t)M * (size_t)N * sizeof(float));
        if (!a || !b || !c) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < na; i++) a[i] = (float)((i * 7919u) % 1000u) / 1000.0f - 0.5f;
        for (size_t i = 0; i < nb; i++) b[i] = (float)((i * 104729u) % 1000u) / 1000.0f - 0.5f;
        gemm(ta, tb, M, N, K, a, lda, b, ldb, c); // warm-up: threads, generated kernels, caches
        double best = 1e30;
        for (int round = 0; round < 7; round++) {
            int reps = 0;
            double t0 = now(), t;
            do {
                gemm(ta, tb, M, N, K, a, lda, b, ldb, c);
                reps++;
                t = now() - t0;
            } while (t < 0.15);
            if (t / reps < best) best = t / reps;
        }
        printf("{\"library\": \"%s\", \"shape\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"trans_a\": %d, "
               "\"trans_b\": %d, \"single_thread\": %d, \"us\": %.2f, \"gflops\": %.1f}\n",
               lib, shapes[s].name, M, N, K, ta, tb, single, best * 1e6, 2.0 * M * N * K / best / 1e9);
        free(a);
        free(b);
        free(c);
    }
    return 0;
}
