# bench/ scripts that docs quote: the data-parallel scaling model's parameter and FLOP counts against
# retort's own, and its printed verdicts against its JSON record (seconds).
rt_script_test(scaling_model check_scaling_model.py)
set_tests_properties(scaling_model PROPERTIES LABELS cli)
