# system.dist nccl through mpirun (tests/check_nccl.py). Without a GPU: every rank fails at once, naming its
# rank and the cause, and nothing hangs; with one: a world-1 nccl run equals system.dist single. Skipped (77)
# when retort has no nccl communicator (a CPU-only or MPI-less build) or mpirun is missing.
rt_script_test(nccl check_nccl.py)
set_tests_properties(nccl PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
