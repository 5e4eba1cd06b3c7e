# bf16 on the CPU backend, checked the way the GPU's bf16 is: the CUDA twin tests built with RT_TWIN_CPU run
# their bf16 cases with the CPU backend in the GPU's place, against the CPU's fp32 ops and model (every op,
# the KV-cache ops, 50 training steps tracking the fp32 loss, cached generation), and the CLI trains,
# resumes bit-exactly and exports in bf16 on the CPU. Skipped (77) on a CPU without AVX-512, which refuses bf16.
rt_check_test(test_cpu_bf16_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_ops.c ${CMAKE_CURRENT_SOURCE_DIR}/cuda_twin.c)
rt_check_test(test_cpu_bf16_kv ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_kv.c ${CMAKE_CURRENT_SOURCE_DIR}/cuda_twin.c)
rt_check_test(test_cpu_bf16_model ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_model.c ${CMAKE_CURRENT_SOURCE_DIR}/model_twin.c)
foreach(t test_cpu_bf16_ops test_cpu_bf16_kv test_cpu_bf16_model)
  target_compile_definitions(${t} PRIVATE RT_TWIN_CPU)
  set_tests_properties(${t} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
rt_script_test(train_resume_cpu_bf16 check_resume.py)
set_property(TEST train_resume_cpu_bf16 APPEND PROPERTY ENVIRONMENT "RT_TEST_PRECISION=bf16")
set_tests_properties(train_resume_cpu_bf16 PROPERTIES SKIP_RETURN_CODE 77)
