// The hand-written protobuf encoder against the byte sequences of the protobuf encoding guide
// (protobuf.dev/programming-guides/encoding), and the ONNX writer's choice between inline weights and
// 4096-aligned external data.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/onnx_graph.h"
#include "export/onnx_pb.h"
#include "testutil.h"
#include "base/buf.h"

static void assert_bytes(const rt_buf *b, const uint8_t *want, size_t n) {
    ck_assert_int_eq(b->oom, 0);
    ck_assert_uint_eq(b->len, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(b->data[i] == want[i], "byte %zu: %02x, expected %02x", i, b->data[i], want[i]);
}

START_TEST(test_guide_examples) {
    rt_buf b = {0};
    rt_pb_int(&b, 1, 150); // the guide's first example: "08 96 01"
    assert_bytes(&b, (const uint8_t[]){0x08, 0x96, 0x01}, 3);
    rt_buf_free(&b);
    rt_pb_string(&b, 2, "testing"); // "12 07 74 65 73 74 69 6e 67"
    assert_bytes(&b, (const uint8_t[]){0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'}, 9);
    rt_buf_free(&b);
    rt_pb_int(&b, 1, -2); // int64 -2: ten bytes of two's complement
    assert_bytes(&b, (const uint8_t[]){0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11);
    rt_buf_free(&b);
    rt_pb_float(&b, 2, 1.0f); // wire type 5, little-endian IEEE 754
    assert_bytes(&b, (const uint8_t[]){0x15, 0x00, 0x00, 0x80, 0x3f}, 5);
    rt_buf_free(&b);
    rt_buf sub = {0};
    rt_pb_int(&sub, 1, 150); // the guide's embedded message: field 3 holding {1: 150} is "1a 03 08 96 01"
    rt_pb_message(&b, 3, &sub);
    assert_bytes(&b, (const uint8_t[]){0x1a, 0x03, 0x08, 0x96, 0x01}, 5);
    ck_assert_uint_eq(rt_pb_len_field_size(3, 3), 5);
    ck_assert_uint_eq(rt_pb_varint_size(127), 1);
    ck_assert_uint_eq(rt_pb_varint_size(128), 2);
    ck_assert_uint_eq(rt_pb_varint_size(UINT64_MAX), 10);
    rt_buf_free(&sub);
    rt_buf_free(&b);
}
END_TEST

static long file_size(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

// Two weight matrices and a graph output that sums them.
static void small_graph(rt_onnx_graph *g, float *a, float *b) {
    rt_onnx_graph_init(g);
    rt_onnx_init_matrix(g, "a", RT_ONNX_FLOAT, a, 40, 50, 0);
    rt_onnx_init_matrix(g, "b", RT_ONNX_FLOAT16, b, 50, 40, 1);
    const char *in[2] = {"a", "b"}, *out = "y";
    rt_onnx_node(g, "Add", NULL, "add", in, 2, &out, 1, NULL, 0);
    rt_onnx_output(g, "y", RT_ONNX_FLOAT, (rt_onnx_dim[]){{.value = 40}, {.value = 50}}, 2);
}

START_TEST(test_inline_or_external) {
    float *a = calloc(2000, sizeof(float)), *b = calloc(2000, sizeof(float));
    rt_onnx_model_info info = {.ir_version = 10, .opset = 21, .producer_version = "test"};
    rt_onnx_write_report rep;
    rt_error err;
    const char *dir = rt_test_tmpdir("onnx-writer");
    rt_onnx_graph g;
    small_graph(&g, a, b);
    // inline: everything in model.onnx
    ck_assert_int_eq(rt_onnx_write(&g, &info, dir, "in.onnx", "in.onnx.data", RT_ONNX_DATA_AUTO, &rep, &err),
                     0);
    ck_assert_uint_eq(rep.data_bytes, 0);
    ck_assert_int_eq(file_size(dir, "in.onnx.data"), -1);
    ck_assert_int_gt(file_size(dir, "in.onnx"), 2000 * 4 + 2000 * 2);
    // a model over the inline limit moves its weights out on its own, each at a multiple of 4096
    info.inline_limit = 4096;
    ck_assert_int_eq(
        rt_onnx_write(&g, &info, dir, "auto.onnx", "auto.onnx.data", RT_ONNX_DATA_AUTO, &rep, &err), 0);
    ck_assert_int_eq(rep.n_external, 2);
    ck_assert_uint_eq(g.inits[0].offset, 0);
    ck_assert_uint_eq(g.inits[1].offset, 8192); // 8000 bytes of a, padded to 4096
    ck_assert_uint_eq(rep.data_bytes, 8192 + 4000);
    ck_assert_int_eq(file_size(dir, "auto.onnx.data"), 8192 + 4000);
    ck_assert_int_lt(file_size(dir, "auto.onnx"), 1024);
    // asked for, external data holds the same layout whatever the size
    info.inline_limit = 0;
    ck_assert_int_eq(
        rt_onnx_write(&g, &info, dir, "ext.onnx", "ext.onnx.data", RT_ONNX_DATA_EXTERNAL, &rep, &err), 0);
    ck_assert_int_eq(file_size(dir, "ext.onnx.data"), 8192 + 4000);
    rt_onnx_graph_free(&g);
    free(a);
    free(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("onnx_writer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_guide_examples);
    tcase_add_test(tc, test_inline_or_external);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
