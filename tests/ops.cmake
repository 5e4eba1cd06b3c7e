# Every CPU op against PyTorch (ref_ops.py writes the references once per test run), and finite differences.
set(RT_OPS_REF ${CMAKE_BINARY_DIR}/tests/ref/ops.h5)
add_test(NAME ops_reference COMMAND ${CMAKE_COMMAND} -E env ${RT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/ref_ops.py ${RT_OPS_REF})
set_tests_properties(ops_reference PROPERTIES FIXTURES_SETUP ops_ref LABELS script)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/tests/ref)
rt_check_test(test_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_ops.c)
set_tests_properties(test_ops PROPERTIES FIXTURES_REQUIRED ops_ref)
set_property(TEST test_ops APPEND PROPERTY ENVIRONMENT "RT_OPS_REF=${RT_OPS_REF}")
rt_check_test(test_gradcheck ${CMAKE_CURRENT_SOURCE_DIR}/test_gradcheck.c)
