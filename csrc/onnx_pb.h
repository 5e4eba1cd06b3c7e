// The protobuf wire format, write side only (formats.md §7): enough to encode ONNX's ModelProto by hand
// without a protobuf library. A buffer grows as fields are appended; a nested message is built in its own
// buffer and appended whole, its length known.
#ifndef RT_ONNX_PB_H
#define RT_ONNX_PB_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_pb {
    uint8_t *data;
    size_t len, cap;
    int oom; // an allocation failed: the contents are incomplete (checked once, at the end)
} rt_pb;

enum { RT_PB_VARINT = 0, RT_PB_FIXED64 = 1, RT_PB_LEN = 2, RT_PB_FIXED32 = 5 };

void rt_pb_free(rt_pb *b);
void rt_pb_raw(rt_pb *b, const void *data, size_t len);
void rt_pb_varint(rt_pb *b, uint64_t v);
void rt_pb_tag(rt_pb *b, int field, int wire_type);

// One field each. Negative int64 values are ten-byte two's-complement varints, as protobuf writes them.
void rt_pb_int(rt_pb *b, int field, int64_t v);
void rt_pb_float(rt_pb *b, int field, float v);
void rt_pb_bytes(rt_pb *b, int field, const void *data, size_t len);
void rt_pb_string(rt_pb *b, int field, const char *s);
void rt_pb_message(rt_pb *b, int field, const rt_pb *sub);
// The header of a length-delimited field whose len bytes the caller writes next (or streams to a file).
void rt_pb_len_header(rt_pb *b, int field, uint64_t len);

// Encoded sizes, for messages whose bodies are streamed rather than held.
size_t rt_pb_varint_size(uint64_t v);
size_t rt_pb_len_field_size(int field, uint64_t len); // tag + length + len

#endif
