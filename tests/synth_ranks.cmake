# `retort synth` across ranks (mpirun -np 2 and 3): the output is the 1-rank file byte for byte, after a
# resume too, and a failure on one rank ends every rank. Skipped (77) without mpirun or an MPI build.
rt_script_test(synth_ranks check_synth_ranks.py)
set_tests_properties(synth_ranks PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
