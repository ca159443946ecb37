/* The op registry: ops/ops.def expanded into declarations, the table and the
 * lookup by name. There are no numeric op ids. */
#include "ops.h"

#include <string.h>

const tg_op *const tg_op_table[] = {
#define TG_OP(name) &tg_op_##name,
#include "ops.def"
#undef TG_OP
    NULL};

const int tg_op_count = (int)(sizeof tg_op_table / sizeof tg_op_table[0]) - 1;

const tg_op *tg_op_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < tg_op_count; i++)
        if (strcmp(tg_op_table[i]->name, name) == 0)
            return tg_op_table[i];
    return NULL;
}
