/* Tensors: creation, shapes, alignment, overflow, copies, element access and
 * the error of each bad argument. */
#include "helpers.h"

#include <math.h>
#include <string.h>

Test(tensor, new_is_zero_filled_with_its_shape)
{
    int64_t shape[] = {2, 3, 4};
    tg_tensor *t = tg_tensor_new(TG_F32, 3, shape);
    cr_assert(t);
    cr_expect_eq(tg_tensor_ndim(t), 3);
    cr_expect_eq(tg_tensor_numel(t), 24);
    cr_expect_eq(tg_tensor_dtype(t), TG_F32);
    cr_expect_eq(tg_tensor_shape(t)[2], 4);
    const float *d = tg_tensor_data(t);
    for (int i = 0; i < 24; i++)
        cr_expect(d[i] == 0.0f);
    cr_expect_null(tg_tensor_grad(t));
    cr_expect(!tg_tensor_requires_grad(t));
    tg_tensor_free(t);
}

Test(tensor, data_is_64_byte_aligned_for_every_size)
{
    for (int64_t n = 0; n < 70; n += 7) {
        for (int dt = 0; dt < 2; dt++) {
            tg_tensor *t = tg_tensor_new((tg_dtype)dt, 1, &n);
            cr_assert(t);
            cr_expect(((uintptr_t)tg_tensor_data(t) % 64) == 0, "n=%lld", (long long)n);
            tg_tensor_free(t);
        }
    }
    tg_graph *g = tg_graph_new();
    for (int64_t n = 1; n < 40; n += 3) {
        tg_tensor *t = tg_graph_tensor(g, TG_F64, 1, &n);
        cr_expect(((uintptr_t)tg_tensor_data(t) % 64) == 0);
    }
    tg_graph_free(g);
}

Test(tensor, scalar_and_zero_size_and_eight_dims)
{
    tg_tensor *s = tg_tensor_new(TG_F64, 0, NULL);
    cr_assert(s);
    cr_expect_eq(tg_tensor_numel(s), 1);
    cr_expect_eq(tg_tensor_ndim(s), 0);
    tg_tensor_free(s);

    int64_t z[] = {3, 0, 2};
    tg_tensor *e = tg_tensor_new(TG_F32, 3, z);
    cr_assert(e);
    cr_expect_eq(tg_tensor_numel(e), 0);
    cr_expect_not_null(tg_tensor_data(e));
    tg_tensor_free(e);

    int64_t eight[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    tg_tensor *t8 = tg_tensor_new(TG_F32, 8, eight);
    cr_assert(t8);
    cr_expect_eq(tg_tensor_numel(t8), 16);
    tg_tensor_free(t8);
}

Test(tensor, bad_arguments_give_errors_not_crashes)
{
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_error(tg_tensor_new(TG_F32, 9, nine) == NULL, "tg_tensor_new", "ndim 9");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    expect_error(tg_tensor_new(TG_F32, -1, nine) == NULL, "tg_tensor_new", "ndim -1");

    int64_t neg[] = {2, -3};
    expect_error(tg_tensor_new(TG_F64, 2, neg) == NULL, "tg_tensor_new", "negative", "[2, -3]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);

    int64_t huge[] = {INT64_C(1) << 31, INT64_C(1) << 31, 4};
    expect_error(tg_tensor_new(TG_F32, 3, huge) == NULL, "tg_tensor_new", "overflows",
                 "[2147483648, 2147483648, 4]");
    cr_expect_eq(tg_last_status(), TG_ERR_OVERFLOW);

    expect_error(tg_tensor_new(TG_F32, 2, NULL) == NULL, "tg_tensor_new", "shape is NULL");
    expect_error(tg_tensor_new((tg_dtype)7, 1, neg) == NULL, "tg_tensor_new", "dtype 7");
    cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);

    int64_t two[] = {2};
    expect_error(tg_tensor_from(TG_F32, 1, two, NULL) == NULL, "tg_tensor_from", "data is NULL");
    expect_error(tg_tensor_copy(NULL, TG_F32) == NULL, "tg_tensor_copy", "NULL");
    expect_error(tg_tensor_set_requires_grad(NULL, true) == TG_ERR_NULL,
                 "tg_tensor_set_requires_grad");
    tg_tensor_free(NULL); /* a no-op */
}

Test(tensor, from_copies_and_copy_converts)
{
    double v[] = {1.5, -2.25, 3.0, 1e-3, 7.0, -0.0};
    int64_t shape[] = {2, 3};
    tg_tensor *t = tg_tensor_from(TG_F64, 2, shape, v);
    v[0] = 99.0; /* the tensor kept its own copy */
    cr_expect(tg_tensor_get(t, 0) == 1.5);
    tg_tensor *f = tg_tensor_copy(t, TG_F32);
    cr_expect_eq(tg_tensor_dtype(f), TG_F32);
    cr_expect_eq(tg_tensor_ndim(f), 2);
    const double want[] = {1.5, -2.25, 3.0, 1e-3, 7.0, 0.0};
    expect_close(f, want, 0, 1e-7);
    tg_tensor_set(f, 5, 4.5);
    cr_expect(tg_tensor_get(f, 5) == 4.5);
    tg_tensor_fill(f, 2.0);
    cr_expect(tg_tensor_get(f, 3) == 2.0);
    tg_tensor_free(t);
    tg_tensor_free(f);
}

Test(tensor, shape_format_and_names)
{
    char buf[TG_SHAPE_STR_MAX];
    int64_t s[] = {2, 3, 40};
    cr_expect_str_eq(tg_shape_format(buf, sizeof buf, 3, s), "[2, 3, 40]");
    cr_expect_str_eq(tg_shape_format(buf, sizeof buf, 0, NULL), "[]");
    cr_expect_str_eq(tg_dtype_name(TG_F32), "float32");
    cr_expect_str_eq(tg_dtype_name(TG_F64), "float64");
    cr_expect_eq(tg_dtype_size(TG_F32), 4);
    cr_expect_eq(tg_dtype_size(TG_F64), 8);
    cr_expect_str_eq(tg_status_name(TG_ERR_SHAPE), "TG_ERR_SHAPE");
}

Test(tensor, error_state_is_kept_until_cleared)
{
    tg_error_clear();
    cr_expect_eq(tg_last_status(), TG_OK);
    cr_expect_str_eq(tg_last_error(), "");
    cr_expect_eq(tg_set_error(TG_ERR_ARG, "custom %d", 5), TG_ERR_ARG);
    cr_expect_str_eq(tg_last_error(), "custom 5");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    tg_error_clear();
    cr_expect_eq(tg_last_status(), TG_OK);
}

Test(rng, same_seed_same_numbers_and_ranges)
{
    tg_rng a, b;
    tg_rng_seed(&a, 123, 1);
    tg_rng_seed(&b, 123, 1);
    for (int i = 0; i < 100; i++)
        cr_expect_eq(tg_rng_u32(&a), tg_rng_u32(&b));
    tg_rng_seed(&b, 124, 1);
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += tg_rng_u32(&a) == tg_rng_u32(&b);
    cr_expect(same < 3);
    double sum = 0, sq = 0;
    for (int i = 0; i < 20000; i++) {
        double u = tg_rng_uniform(&a);
        cr_expect(u >= 0.0 && u < 1.0);
        double z = tg_rng_normal(&a);
        sum += z;
        sq += z * z;
        cr_expect(tg_rng_below(&a, 7) < 7);
    }
    cr_expect(fabs(sum / 20000) < 0.05, "normal mean %g", sum / 20000);
    cr_expect(fabs(sq / 20000 - 1.0) < 0.05, "normal variance %g", sq / 20000);
}

Test(rng, pcg32_reference_sequence)
{
    /* PCG32 reference output for seed 42, stream 54 (pcg-c-basic's demo). */
    tg_rng r;
    tg_rng_seed(&r, 42, 54);
    const uint32_t want[] = {0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(tg_rng_u32(&r), want[i], "draw %d", i);
}
