# Data-parallel training on Open MPI ranks launched by mpirun, against single-process runs: bit-exact sums,
# ZeRO-1, resume across world sizes, signals and a killed rank. Every mpirun in it has a timeout.
rt_script_test(dist check_dist.py)
set_tests_properties(dist PROPERTIES LABELS "script;dist" SKIP_RETURN_CODE 77 TIMEOUT 900)
