/* Thread count for the kernels (OpenMP inside kernels only; the graph is
 * single-threaded). Work is partitioned so that every output element is
 * computed by one thread in a fixed order: results do not depend on the count. */
#ifndef TG_KERNELS_THREADS_H
#define TG_KERNELS_THREADS_H

/* The count kernels use: tg_set_num_threads, else TG_NUM_THREADS, else the
 * OpenMP default (the number of cores). 1 without OpenMP. */
int tg__threads(void);

/* An OpenMP pragma inside a macro body, dropped without OpenMP:
 * TG_OMP("omp parallel for num_threads(nt)"). */
#ifdef _OPENMP
#define TG_OMP(text) _Pragma(text)
#else
#define TG_OMP(text)
#endif

#endif
