// Protobuf encoding (onnx_pb.h).
#include "onnx_pb.h"

#include <stdlib.h>
#include <string.h>

void rt_pb_free(rt_pb *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void rt_pb_raw(rt_pb *b, const void *data, size_t len) {
    if (b->oom || len == 0) return;
    if (len > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len) cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void rt_pb_varint(rt_pb *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        tmp[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    rt_pb_raw(b, tmp, n);
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

void rt_pb_tag(rt_pb *b, int field, int wire_type) {
    rt_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

void rt_pb_int(rt_pb *b, int field, int64_t v) {
    rt_pb_tag(b, field, RT_PB_VARINT);
    rt_pb_varint(b, (uint64_t)v);
}

void rt_pb_float(rt_pb *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    rt_pb_tag(b, field, RT_PB_FIXED32);
    rt_pb_raw(b, le, 4);
}

void rt_pb_len_header(rt_pb *b, int field, uint64_t len) {
    rt_pb_tag(b, field, RT_PB_LEN);
    rt_pb_varint(b, len);
}

void rt_pb_bytes(rt_pb *b, int field, const void *data, size_t len) {
    rt_pb_len_header(b, field, len);
    rt_pb_raw(b, data, len);
}

void rt_pb_string(rt_pb *b, int field, const char *s) {
    rt_pb_bytes(b, field, s, strlen(s));
}

void rt_pb_message(rt_pb *b, int field, const rt_pb *sub) {
    if (sub->oom) b->oom = 1;
    rt_pb_bytes(b, field, sub->data, sub->len);
}
