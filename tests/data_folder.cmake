# What data/ ships: the example prompt sets through `retort synth`, the fixtures through `retort data text`.
rt_script_test(data_folder check_data_folder.py)
