# The CPU backend: every op against PyTorch float64 references, and backward passes against finite
# differences.
# ops_ref writes the references (tests/ref_ops.py) once per test run; test_ops needs them (fixture ops_ref).
set(RT_OPS_REF ${CMAKE_BINARY_DIR}/tests/ref/ops.h5)
rt_script_test(ops_ref ref_ops.py ${RT_OPS_REF})
set_tests_properties(ops_ref PROPERTIES FIXTURES_SETUP ops_ref)

rt_check_test(test_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_ops.c)
set_tests_properties(test_ops PROPERTIES FIXTURES_REQUIRED ops_ref)
set_property(TEST test_ops APPEND PROPERTY ENVIRONMENT "RT_OPS_REF=${RT_OPS_REF}")

rt_check_test(test_gradcheck ${CMAKE_CURRENT_SOURCE_DIR}/test_gradcheck.c)

# csrc/cpu/simd.h in each of its forms against the scalar code: as the build compiles it, and for AVX2 and
# for plain x86-64 whatever the build machine (a CPU without AVX2 skips that variant).
rt_check_test(test_simd ${CMAKE_CURRENT_SOURCE_DIR}/test_simd.c)
rt_check_test(test_simd_avx2 ${CMAKE_CURRENT_SOURCE_DIR}/test_simd.c)
target_compile_options(test_simd_avx2 PRIVATE -mavx2 -mfma -mno-avx512f)
target_compile_definitions(test_simd_avx2 PRIVATE RT_SIMD_EXPECT="AVX2")
rt_check_test(test_simd_plain ${CMAKE_CURRENT_SOURCE_DIR}/test_simd.c)
target_compile_options(test_simd_plain PRIVATE -mno-avx)
target_compile_definitions(test_simd_plain PRIVATE RT_SIMD_EXPECT="plain")
set_tests_properties(test_simd test_simd_avx2 test_simd_plain PROPERTIES SKIP_RETURN_CODE 77)
