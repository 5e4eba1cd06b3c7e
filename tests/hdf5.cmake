# HDF5 files: checkpoints (library behaviour, then the documented layout read with h5py) and datasets.
rt_check_test(test_checkpoint ${CMAKE_CURRENT_SOURCE_DIR}/test_checkpoint.c)
set_tests_properties(test_checkpoint PROPERTIES FIXTURES_SETUP ckpt_layout)
rt_script_test(ckpt_h5py check_ckpt_h5py.py ${CMAKE_BINARY_DIR}/tests/ref/layout-example.h5)
set_tests_properties(ckpt_h5py PROPERTIES FIXTURES_REQUIRED ckpt_layout)
