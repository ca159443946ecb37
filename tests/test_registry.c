/* The registry walk: every op in tg_op_table[] must have gradcheck cases
 * (at least GC_MIN_CASES), and every case must name a registered op. */
#include "helpers.h"

#include <string.h>

#define GC_MIN_CASES 20

typedef struct family {
    const char *name;
    const gc_case *cases;
    size_t n;
} family;

static const family families[] = {
#define GC_FAMILY(fam) {#fam, gc_cases_##fam, 0},
#include "gc_families.def"
#undef GC_FAMILY
    {NULL, NULL, 0}};

static size_t family_count(size_t k)
{
    size_t i = 0;
#define GC_FAMILY(fam) if (i++ == k) return gc_n_##fam;
#include "gc_families.def"
#undef GC_FAMILY
    (void)i;
    (void)k;
    return 0;
}

static size_t cases_for(const char *op)
{
    size_t n = 0;
    for (size_t f = 0; families[f].name; f++)
        for (size_t i = 0; i < family_count(f); i++)
            n += strcmp(families[f].cases[i].op, op) == 0;
    return n;
}

Test(registry, every_op_has_gradcheck_cases)
{
    cr_expect(tg_op_count > 0, "the registry is empty");
    for (int i = 0; i < tg_op_count; i++) {
        const char *name = tg_op_table[i]->name;
        size_t n = cases_for(name);
        cr_expect(n >= GC_MIN_CASES, "op %s has %zu gradcheck cases, needs at least %d", name, n,
                  GC_MIN_CASES);
    }
}

Test(registry, every_case_names_a_registered_op)
{
    for (size_t f = 0; families[f].name; f++)
        for (size_t i = 0; i < family_count(f); i++)
            cr_expect(tg_op_find(families[f].cases[i].op) != NULL,
                      "family %s case %zu names unknown op %s", families[f].name, i,
                      families[f].cases[i].op);
}

Test(registry, names_are_unique_and_lookup_works)
{
    for (int i = 0; i < tg_op_count; i++) {
        cr_expect(tg_op_find(tg_op_table[i]->name) == tg_op_table[i], "lookup of %s",
                  tg_op_table[i]->name);
        for (int j = i + 1; j < tg_op_count; j++)
            cr_expect(strcmp(tg_op_table[i]->name, tg_op_table[j]->name) != 0,
                      "duplicate op name %s", tg_op_table[i]->name);
    }
    cr_expect(tg_op_find("no_such_op") == NULL);
    cr_expect(tg_op_find(NULL) == NULL);
}
