// Protobuf encoding (onnx_pb.h).
#include "export/onnx_pb.h"
#include "base/buf.h"

#include <string.h>

void rt_pb_varint(rt_buf *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        tmp[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    rt_buf_append(b, tmp, n);
}

size_t rt_pb_varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t rt_pb_len_field_size(int field, uint64_t len) {
    return rt_pb_varint_size((uint64_t)field << 3) + rt_pb_varint_size(len) + (size_t)len;
}

void rt_pb_tag(rt_buf *b, int field, int wire_type) {
    rt_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

void rt_pb_int(rt_buf *b, int field, int64_t v) {
    rt_pb_tag(b, field, RT_PB_VARINT);
    rt_pb_varint(b, (uint64_t)v);
}

void rt_pb_float(rt_buf *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    rt_pb_tag(b, field, RT_PB_FIXED32);
    rt_buf_append(b, le, 4);
}

void rt_pb_len_header(rt_buf *b, int field, uint64_t len) {
    rt_pb_tag(b, field, RT_PB_LEN);
    rt_pb_varint(b, len);
}

void rt_pb_bytes(rt_buf *b, int field, const void *data, size_t len) {
    rt_pb_len_header(b, field, len);
    rt_buf_append(b, data, len);
}

void rt_pb_string(rt_buf *b, int field, const char *s) {
    rt_pb_bytes(b, field, s, strlen(s));
}

void rt_pb_message(rt_buf *b, int field, const rt_buf *sub) {
    if (sub->oom) b->oom = 1;
    rt_pb_bytes(b, field, sub->data, sub->len);
}
