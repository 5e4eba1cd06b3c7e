# Failure paths through the CLI: a full disk for every writer (a 600 KB tmpfs; needs root to mount, skipped
# otherwise) and non-finite training steps.
rt_script_test(disk_full check_disk_full.py)
set_tests_properties(disk_full PROPERTIES LABELS cli SKIP_RETURN_CODE 77)
rt_script_test(nonfinite check_nonfinite.py)
set_tests_properties(nonfinite PROPERTIES LABELS cli)
