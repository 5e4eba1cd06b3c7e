// A named host tensor: the form weights take between the model, checkpoints and the exporters.
#ifndef RT_NAMED_TENSOR_H
#define RT_NAMED_TENSOR_H

#include <stdint.h>

#define RT_TENSOR_NAME_MAX 96

typedef struct rt_named_tensor {
    char name[RT_TENSOR_NAME_MAX];
    int ndim;         // 1 or 2 (up to 4)
    int64_t shape[4]; // row-major
    float *data;      // host fp32, product(shape) elements
} rt_named_tensor;

// Find a tensor by name in an array (NULL when absent).
const rt_named_tensor *rt_named_tensor_find(const rt_named_tensor *ts, int n, const char *name);

#endif
