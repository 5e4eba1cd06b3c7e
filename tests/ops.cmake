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
