/* The packed, cache-blocked GEMM driver (GotoBLAS / BLIS loop nest), written
 * once and instantiated per CPU path and dtype: gemm.c (generic), gemm_avx2.c
 * and gemm_avx512.c include this file once per dtype after defining
 *   GT           element type (float, double)
 *   GSFX         name suffix (f32_avx512): defines tg__gemm_run_<GSFX>
 *   GARGS        the argument block type (tg__gemm_args_f32)
 *   GMR, GNR     register tile: rows of op(A), columns of op(B)
 *   GKC, GMC, GNC  cache blocks: depth, rows (multiple of GMR), columns
 *                (multiple of GNR)
 *   GTGT         function attribute (target("...")) or nothing
 *   GKERNEL      micro-kernel (see TG__GEMM_KERNEL_2V in gemm_impl.h)
 *   GMIN_WORK    multiply-adds below which one more thread does not pay
 * and optionally fast packing for full slivers:
 *   GPACK_A_N(kc, src, lda, dst)  GMR rows of A (not transposed) -> [kc][GMR]
 *   GPACK_B_T(kc, src, ldb, dst)  GNR rows of B (op(B) = B^T)   -> [kc][GNR]
 *   GPACK_A_T(kc, src, lda, dst)  GMR columns of A (op(A) = A^T) -> [kc][GMR]
 *   GPACK_B_N(kc, src, ldb, dst)  GNR columns of B (not transposed) -> [kc][GNR]
 *   GSMALL(p, nt)  an unpacked path for small products: returns false when it
 *                  does not take the shape (it must decide from the shape alone:
 *                  op(B) = B and M*N*K <= GSMALL_MNK)
 * No include guard: every inclusion makes a new instance and undefines the
 * parameters at the end. */

#define GN3(a, b) a##_##b
#define GN2(a, b) GN3(a, b)
#define GN(a) GN2(a, GSFX)

/* Packs rows [i0, i0 + mc) x depth [k0, k0 + kc) of op(A) into slivers of GMR
 * rows, each [kc][GMR] (rows past mc are zero). dst: [ceil(mc/GMR)][kc][GMR]. */
GTGT static void GN(pack_a)(const GARGS *p, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                            GT *restrict dst)
{
    const int64_t lda = p->lda;
    for (int64_t r = 0; r < mc; r += GMR, dst += kc * GMR) {
        const int64_t mr = mc - r < GMR ? mc - r : GMR;
        if (!p->ta) { /* A [M x K]: op(A) row i is contiguous along k */
            const GT *src = p->A + (i0 + r) * lda + k0;
#ifdef GPACK_A_N
            if (mr == GMR) {
                GPACK_A_N(kc, src, lda, dst);
                continue;
            }
#endif
            for (int64_t k = 0; k < kc; k++) {
                GT *d = dst + k * GMR;
                for (int64_t i = 0; i < mr; i++)
                    d[i] = src[i * lda + k];
                for (int64_t i = mr; i < GMR; i++)
                    d[i] = 0;
            }
        } else { /* A [K x M]: GMR values of op(A) per k are contiguous */
            const GT *src = p->A + k0 * lda + i0 + r;
#ifdef GPACK_A_T
            if (mr == GMR) {
                GPACK_A_T(kc, src, lda, dst);
                continue;
            }
#endif
            if (mr == GMR) {
                for (int64_t k = 0; k < kc; k++)
                    for (int i = 0; i < GMR; i++)
                        dst[k * GMR + i] = src[k * lda + i];
            } else {
                for (int64_t k = 0; k < kc; k++) {
                    for (int64_t i = 0; i < mr; i++)
                        dst[k * GMR + i] = src[k * lda + i];
                    for (int64_t i = mr; i < GMR; i++)
                        dst[k * GMR + i] = 0;
                }
            }
        }
    }
}

/* Packs the panel depth [k0, k0 + kc) x columns [j0, j0 + nc) of op(B) into
 * slivers of GNR columns, each [kc][GNR] (columns past nc are zero).
 * Bp: [ceil(nc/GNR)][kc][GNR]. */
GTGT static void GN(pack_b)(const GARGS *p, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                            GT *restrict Bp)
{
    const int64_t ldb = p->ldb;
    for (int64_t s = 0; s * GNR < nc; s++) {
        const int64_t j = j0 + s * GNR, nr = nc - s * GNR < GNR ? nc - s * GNR : GNR;
        GT *restrict dst = Bp + s * kc * GNR;
        if (!p->tb) { /* B [K x N]: GNR values per k are contiguous */
            const GT *src = p->B + k0 * ldb + j;
#ifdef GPACK_B_N
            if (nr == GNR) {
                GPACK_B_N(kc, src, ldb, dst);
                continue;
            }
#endif
            if (nr == GNR) {
                for (int64_t k = 0; k < kc; k++)
                    for (int jj = 0; jj < GNR; jj++)
                        dst[k * GNR + jj] = src[k * ldb + jj];
            } else {
                for (int64_t k = 0; k < kc; k++) {
                    for (int64_t jj = 0; jj < nr; jj++)
                        dst[k * GNR + jj] = src[k * ldb + jj];
                    for (int64_t jj = nr; jj < GNR; jj++)
                        dst[k * GNR + jj] = 0;
                }
            }
        } else { /* B [N x K]: column j of op(B) is row j of B, contiguous along k */
            const GT *src = p->B + j * ldb + k0;
#ifdef GPACK_B_T
            if (nr == GNR) {
                GPACK_B_T(kc, src, ldb, dst);
                continue;
            }
#endif
            for (int64_t k = 0; k < kc; k++) {
                GT *d = dst + k * GNR;
                for (int64_t jj = 0; jj < nr; jj++)
                    d[jj] = src[jj * ldb + k];
                for (int64_t jj = nr; jj < GNR; jj++)
                    d[jj] = 0;
            }
        }
    }
}

/* A tile cut by the edge of C (mr < GMR or nr < GNR): the kernel runs on a
 * full tile in a local buffer, so every element sees exactly the arithmetic of
 * a full tile (results do not depend on where tiles fall). */
GTGT static void GN(edge)(int64_t kc, const GT *a, const GT *b, GT *c, int64_t ldc, int64_t mr,
                          int64_t nr, GT alpha, GT beta, bool load_c)
{
    _Alignas(64) GT t[GMR * GNR];
    for (int i = 0; i < GMR * GNR; i++)
        t[i] = 0;
    if (load_c)
        for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nr; j++)
                t[i * GNR + j] = c[i * ldc + j];
    GKERNEL(kc, a, b, t, GNR, alpha, beta, load_c);
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++)
            c[i * ldc + j] = t[i * GNR + j];
}

/* The per-call plan. */
typedef struct GN(plan) {
    int64_t nkb, kcb;   /* K blocks: nkb blocks of kcb (the last may be shorter) */
    int64_t per_thread; /* elements of one thread's buffers: B panel, then A block */
    int64_t bp_elems;   /* the B panel's share */
    GT *buf;            /* nt buffers of per_thread elements */
} GN(plan);

/* One thread's part (thread tid of nt): the GotoBLAS loop nest jc / pc / ic /
 * jr / ir over this thread's block of C, with its own packed B panel and A
 * block. Threads form a tm x tn grid over C's tiles (tg__gemm_split); there
 * is no sharing and no barrier. Each C element is computed by one thread,
 * with K blocks in order, and the arithmetic of an element depends only on K
 * (never on where the thread blocks fall), so any thread count gives the
 * same bits. */
GTGT static void GN(nest)(const GARGS *p, const GN(plan) *pl, int tid, int nt)
{
    int tm, tn;
    tg__gemm_split(p->M, p->N, p->K, GMR, GNR, nt, &tm, &tn);
    const int gm = tid / tn, gn = tid % tn;
    const int64_t tiles_m = (p->M + GMR - 1) / GMR, tiles_n = (p->N + GNR - 1) / GNR;
    const int64_t m0 = tiles_m * gm / tm * GMR, n0 = tiles_n * gn / tn * GNR;
    int64_t m1 = tiles_m * (gm + 1) / tm * GMR, n1 = tiles_n * (gn + 1) / tn * GNR;
    if (m1 > p->M)
        m1 = p->M;
    if (n1 > p->N)
        n1 = p->N;
    GT *Bp = pl->buf + (int64_t)tid * pl->per_thread, *Ap = Bp + pl->bp_elems;

    for (int64_t jc = n0; jc < n1; jc += GNC) {
        const int64_t nc = n1 - jc < GNC ? n1 - jc : GNC;
        const int64_t ns = (nc + GNR - 1) / GNR;
        for (int64_t kb = 0; kb < pl->nkb; kb++) {
            const int64_t k0 = kb * pl->kcb;
            const int64_t kc = p->K - k0 < pl->kcb ? p->K - k0 : pl->kcb;
            const bool first = kb == 0;
            const bool load_c = !(first && p->beta == 0);
            const GT beta = first ? p->beta : 1;

            GN(pack_b)(p, k0, kc, jc, nc, Bp);
            for (int64_t ic = m0; ic < m1; ic += GMC) {
                const int64_t mc = m1 - ic < GMC ? m1 - ic : GMC;
                GN(pack_a)(p, ic, mc, k0, kc, Ap);
                for (int64_t s = 0; s < ns; s++) {
                    const int64_t j = jc + s * GNR;
                    const int64_t nr = n1 - j < GNR ? n1 - j : GNR;
                    const GT *b = Bp + s * kc * GNR;
                    for (int64_t r = 0; r < mc; r += GMR) {
                        const int64_t mr = mc - r < GMR ? mc - r : GMR;
                        GT *c = p->C + (ic + r) * p->ldc + j;
                        if (mr == GMR && nr == GNR)
                            GKERNEL(kc, Ap + r * kc, b, c, p->ldc, p->alpha, beta, load_c);
                        else
                            GN(edge)(kc, Ap + r * kc, b, c, p->ldc, mr, nr, p->alpha, beta, load_c);
                    }
                }
            }
        }
    }
}

static size_t GN(round64)(size_t bytes) { return (bytes + 63) / 64 * 64; }

bool GN(tg__gemm_run)(const GARGS *p, int nt)
{
#ifdef GSMALL
    if (GSMALL(p, nt))
        return true;
#endif
    /* Threads: each gets more than GMIN_WORK multiply-adds and a tile. */
    const double work = (double)p->M * (double)p->N * (double)p->K;
    const int64_t tiles_m = (p->M + GMR - 1) / GMR, tiles_n = (p->N + GNR - 1) / GNR;
    if (nt > 1 && work <= (double)nt * GMIN_WORK)
        nt = (int)((work - 1) / GMIN_WORK);
    if (nt > tiles_m * tiles_n)
        nt = (int)(tiles_m * tiles_n);
    if (nt < 1)
        nt = 1;

    /* K blocks depend on K only, so the summation order never depends on nt. */
    GN(plan) pl;
    pl.nkb = (p->K + GKC - 1) / GKC;
    pl.kcb = (p->K + pl.nkb - 1) / pl.nkb;
    /* Buffers big enough for any split (a smaller team than asked for gives
     * each thread a larger block). */
    const int64_t cols = tiles_n * GNR < GNC ? tiles_n * GNR : GNC;
    const int64_t rows = tiles_m * GMR < GMC ? tiles_m * GMR : GMC;
    pl.bp_elems = (int64_t)(GN(round64)((size_t)(cols * pl.kcb) * sizeof(GT)) / sizeof(GT));
    pl.per_thread =
        pl.bp_elems + (int64_t)(GN(round64)((size_t)(rows * pl.kcb) * sizeof(GT)) / sizeof(GT));
    pl.buf = tg__gemm_scratch((size_t)nt * (size_t)pl.per_thread * sizeof(GT));
    if (!pl.buf)
        return false;

#ifdef _OPENMP
    tg__gemm_team team;
    if (tg__gemm_team_begin(&team, nt) > 1) {
        TG_OMP("omp parallel num_threads(nt)")
        {
            const int n = omp_get_num_threads();
            GN(nest)(p, &pl, omp_get_thread_num(), n);
            tg__gemm_team_done(&team, n);
        }
        tg__gemm_team_end(&team);
        return true;
    }
#endif
    GN(nest)(p, &pl, 0, 1);
    return true;
}

tg__gemm_blocking GN(tg__gemm_blocking)(void)
{
#ifdef GSMALL
    tg__gemm_blocking b = {GMR, GNR, GKC, GMC, GNC, GSMALL_MNK};
#else
    tg__gemm_blocking b = {GMR, GNR, GKC, GMC, GNC, 0};
#endif
    return b;
}

#undef GN3
#undef GN2
#undef GN
#undef GT
#undef GSFX
#undef GARGS
#undef GMR
#undef GNR
#undef GKC
#undef GMC
#undef GNC
#undef GTGT
#undef GKERNEL
#undef GPACK_A_N
#undef GPACK_B_T
#undef GPACK_A_T
#undef GPACK_B_N
#undef GSMALL
#undef GSMALL_MNK
#undef GMIN_WORK
