# The Slurm batch scripts (scripts/slurm/) on a real one-node cluster that the check starts and stops itself
# (tests/slurm/); skipped where it cannot start one (not root, packages missing). One cluster at a time:
# both tests take the same resource lock. The time-limit test waits for a real --signal warning (about
# 105 s) and runs only with RT_SLOW=1.
rt_script_test(slurm check_slurm.py)
set_tests_properties(slurm PROPERTIES LABELS "script;slurm" SKIP_RETURN_CODE 77 TIMEOUT 400 RESOURCE_LOCK slurm)
rt_script_test(slurm_time_limit check_slurm.py --time-limit)
set_tests_properties(slurm_time_limit PROPERTIES LABELS "script;slurm;slow" SKIP_RETURN_CODE 77 TIMEOUT 400
                     RESOURCE_LOCK slurm)
