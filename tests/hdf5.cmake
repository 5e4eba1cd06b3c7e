# HDF5 files: checkpoints and datasets (library behaviour, damaged files, `retort inspect`), then the
# documented checkpoint layout read back with h5py alone.
rt_check_test(test_checkpoint ${CMAKE_CURRENT_SOURCE_DIR}/test_checkpoint.c)
rt_check_test(test_dataset ${CMAKE_CURRENT_SOURCE_DIR}/test_dataset.c)
# test_checkpoint writes build/tests/ref/layout-example.h5 (V=259, C=16, L=2, H=4, KVH=2, F=24, tied);
# ckpt_h5py checks it. The same script checks real training checkpoints in other areas' tests.
set_tests_properties(test_checkpoint PROPERTIES FIXTURES_SETUP ckpt_layout)
rt_script_test(ckpt_h5py check_ckpt_h5py.py ${CMAKE_BINARY_DIR}/tests/ref/layout-example.h5)
set_tests_properties(ckpt_h5py PROPERTIES FIXTURES_REQUIRED ckpt_layout)
