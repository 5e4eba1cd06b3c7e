# The training CLI's first run (missing datasets, the warm-up clamp) and MFU against its stated peak.
rt_check_test(test_peak ${CMAKE_CURRENT_SOURCE_DIR}/test_peak.c)
rt_script_test(first_run check_first_run.py)
