// Shared by the ONNX export's files: the decoder graph (onnx_decoder.c) and the folder around it
// (onnx_export.c).
#ifndef RT_ONNX_EXPORT_INTERNAL_H
#define RT_ONNX_EXPORT_INTERNAL_H

#include "export/onnx_export.h"
#include "export/onnx_graph.h"

typedef struct rt_onnx_decoder {
    rt_onnx_graph *g;
    const rt_config *cfg;
    const rt_named_tensor *weights;
    int n_weights;
    int precision;
    int opset; // 21 or 23
    int io;    // element type of the graph's float inputs and outputs (logits, KV cache): FLOAT or FLOAT16
    int H, KVH, G, hd, L;
    int n_used; // checkpoint tensors the graph took
    rt_error *err;
} rt_onnx_decoder;

// Adds the whole decoder to d->g: inputs, weights, nodes, outputs.
int rt_onnx_build_decoder(rt_onnx_decoder *d);

#endif
