// The protobuf wire format, write side only (docs/formats.md, Protobuf): enough to encode ONNX's ModelProto
// by hand without a protobuf library. Fields are appended to an rt_buf; a nested message is built in its own
// buffer and appended whole, its length known.
#ifndef RT_ONNX_PB_H
#define RT_ONNX_PB_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/buf.h"

enum { RT_PB_VARINT = 0, RT_PB_FIXED64 = 1, RT_PB_LEN = 2, RT_PB_FIXED32 = 5 };

void rt_pb_varint(rt_buf *b, uint64_t v);
void rt_pb_tag(rt_buf *b, int field, int wire_type);

// One field each. Negative int64 values are ten-byte two's-complement varints, as protobuf writes them.
void rt_pb_int(rt_buf *b, int field, int64_t v);
void rt_pb_float(rt_buf *b, int field, float v);
void rt_pb_bytes(rt_buf *b, int field, const void *data, size_t len);
void rt_pb_string(rt_buf *b, int field, const char *s);
void rt_pb_message(rt_buf *b, int field, const rt_buf *sub);
// The header of a length-delimited field whose len bytes the caller writes next (or streams to a file).
void rt_pb_len_header(rt_buf *b, int field, uint64_t len);

// Encoded sizes, for messages whose bodies are streamed rather than held.
size_t rt_pb_varint_size(uint64_t v);
size_t rt_pb_len_field_size(int field, uint64_t len); // tag + length + len

#endif
