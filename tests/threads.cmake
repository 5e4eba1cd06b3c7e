# The CPU thread count picked from the affinity mask, Slurm, OpenMP's variable and the ranks on the node,
# under the real taskset and mpirun.
rt_script_test(cpu_threads check_threads.py)
set_tests_properties(cpu_threads PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
