// An ONNX graph built node by node and written as a ModelProto (docs/formats.md, ONNX): nodes in the order
// added (topological by construction), initializers that are either bytes held here or an fp32 matrix
// converted (transposed, to fp16) only while it is written, so export never holds a second copy of the model.
// Weights go inline, or to one external data file at 4096-byte aligned offsets when asked or when the model
// would pass protobuf's 2 GiB message limit.
#ifndef RT_ONNX_GRAPH_H
#define RT_ONNX_GRAPH_H

#include <stdint.h>

#include "base/common.h"
#include "export/onnx_pb.h"
#include "base/buf.h"

// TensorProto.DataType values
enum {
    RT_ONNX_FLOAT = 1,
    RT_ONNX_UINT8 = 2,
    RT_ONNX_INT32 = 6,
    RT_ONNX_INT64 = 7,
    RT_ONNX_BOOL = 9,
    RT_ONNX_FLOAT16 = 10
};

// AttributeProto.AttributeType values used here
enum { RT_ONNX_ATTR_FLOAT = 1, RT_ONNX_ATTR_INT = 2, RT_ONNX_ATTR_STRING = 3, RT_ONNX_ATTR_INTS = 7 };

typedef struct rt_onnx_attr {
    const char *name;
    int type;
    int64_t i;
    float f;
    const char *s;
    const int64_t *ints;
    int n_ints;
} rt_onnx_attr;

// One dimension of a graph input or output: a fixed size, or a symbolic name ("batch_size").
typedef struct rt_onnx_dim {
    int64_t value;
    const char *param;
} rt_onnx_dim;

typedef struct rt_onnx_init {
    char *name;
    int dtype, ndim;
    int64_t dims[3];
    void *owned; // the bytes (little-endian), or NULL when src is used
    const float
        *src; // fp32 source: dims as they are, or with transpose [dims[1], dims[0]] written transposed
    int transpose;
    size_t nbytes;
    int external;    // chosen by the writer
    uint64_t offset; // in the external data file
} rt_onnx_init;

typedef struct rt_onnx_graph {
    rt_buf nodes, io; // serialized GraphProto.node and .input/.output fields
    rt_onnx_init *inits;
    int n_inits, cap_inits;
    char **names; // every string the graph owns
    int n_names, cap_names;
    int n_nodes;
    int oom;
} rt_onnx_graph;

void rt_onnx_graph_init(rt_onnx_graph *g);
void rt_onnx_graph_free(rt_onnx_graph *g);

// A string owned by the graph, from a printf format (NULL, and g->oom set, on allocation failure).
const char *rt_onnx_name(rt_onnx_graph *g, const char *fmt, ...) RT_PRINTF(2, 3);

// A node. Inputs may be "" for a skipped optional input. domain NULL is the ONNX domain.
void rt_onnx_node(rt_onnx_graph *g, const char *op, const char *domain, const char *name,
                  const char *const *inputs, int n_in, const char *const *outputs, int n_out,
                  const rt_onnx_attr *attrs, int n_attrs);

// Graph inputs and outputs: a tensor of dtype with the given dims (ndim 0 = scalar).
void rt_onnx_input(rt_onnx_graph *g, const char *name, int dtype, const rt_onnx_dim *dims, int ndim);
void rt_onnx_output(rt_onnx_graph *g, const char *name, int dtype, const rt_onnx_dim *dims, int ndim);

// Initializers. rt_onnx_init_bytes takes ownership of data (malloc'd; freed even on failure).
// ndim 0 is a scalar. rt_onnx_init_matrix refers to src [rows, cols] fp32 (it must outlive the write):
// written as dtype FLOAT or FLOAT16, as [rows, cols] or transposed [cols, rows].
void rt_onnx_init_bytes(rt_onnx_graph *g, const char *name, int dtype, const int64_t *dims, int ndim,
                        void *data, size_t nbytes);
void rt_onnx_init_matrix(rt_onnx_graph *g, const char *name, int dtype, const float *src, int64_t rows,
                         int64_t cols, int transpose);
// Small constants (copied): int64 and float vectors, or scalars with ndim 0.
void rt_onnx_const_i64(rt_onnx_graph *g, const char *name, const int64_t *v, int n, int scalar);
void rt_onnx_const_f32(rt_onnx_graph *g, const char *name, const float *v, int n, int scalar);

typedef struct rt_onnx_model_info {
    int64_t ir_version;
    int opset;    // of the ONNX domain
    int ms_opset; // of com.microsoft, 0 when unused
    const char *producer_version;
    const char *doc;
    const char *const *meta; // key, value pairs
    int n_meta;
    uint64_t inline_limit; // largest GraphProto kept inline under AUTO; 0: protobuf's 2 GiB (tests set less)
} rt_onnx_model_info;

enum { RT_ONNX_DATA_AUTO = 0, RT_ONNX_DATA_EXTERNAL = 1 };

typedef struct rt_onnx_write_report {
    uint64_t model_bytes, data_bytes; // the .onnx file, the external data file (0 when inline)
    int n_external;                   // tensors in the external file
} rt_onnx_write_report;

// Writes dir/model_name (and dir/data_name when the weights go external), each fsync'd. AUTO keeps the
// weights inline unless the model would reach 2 GiB.
int rt_onnx_write(rt_onnx_graph *g, const rt_onnx_model_info *info, const char *dir, const char *model_name,
                  const char *data_name, int data_mode, rt_onnx_write_report *rep, rt_error *err);

#endif
