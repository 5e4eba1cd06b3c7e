# The training CLI's first run (missing datasets, the warm-up clamp) and MFU against its stated peak.
rt_check_test(test_peak ${CMAKE_CURRENT_SOURCE_DIR}/test_peak.c)
if(RT_HAVE_CUDA)
  # the GPU's name to its spec peak; exits 77 (skipped) without a GPU
  add_test(NAME test_peak_gpu COMMAND test_peak gpu)
  set_tests_properties(test_peak_gpu PROPERTIES ENVIRONMENT "${RT_TEST_ENV}" LABELS "unit;gpu" SKIP_RETURN_CODE 77)
endif()
rt_script_test(first_run check_first_run.py)
