// Named host tensors (named_tensor.h).
#include "base/named_tensor.h"

#include <string.h>

const rt_named_tensor *rt_named_tensor_find(const rt_named_tensor *ts, int n, const char *name) {
    for (int i = 0; ts && i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return &ts[i];
    return NULL;
}
