# Failure paths through the CLI: a full disk for every writer (a 600 KB tmpfs; needs root to mount, skipped
# otherwise) and non-finite training steps. Both are seconds long and run again under ASan/UBSan (label
# sanitize), where a leak or double free on an error path aborts.
rt_script_test(disk_full check_disk_full.py)
set_tests_properties(disk_full PROPERTIES LABELS "cli;sanitize" SKIP_RETURN_CODE 77)
rt_script_test(nonfinite check_nonfinite.py)
set_tests_properties(nonfinite PROPERTIES LABELS "cli;sanitize")
