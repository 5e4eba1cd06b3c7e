# The CUDA backend: every op against its CPU twin, and the whole model on the GPU against the CPU. Built
# whenever the CUDA backend is; without a GPU they exit 77 and ctest reports them as skipped. In the emulation
# build (-DRT_CUDA_EMU=ON, docs/cuda_emulation.md) they run on the CPU emulator and carry the label emu too.
if(RT_CUDA_EMU)
  set(RT_GPU_LABELS "unit;gpu;emu")
else()
  set(RT_GPU_LABELS "unit;gpu")
endif()
if(RT_HAVE_CUDA)
  rt_check_test(test_cuda_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_ops.c ${CMAKE_CURRENT_SOURCE_DIR}/cuda_twin.c)
  set_tests_properties(test_cuda_ops PROPERTIES SKIP_RETURN_CODE 77 LABELS "${RT_GPU_LABELS}")
endif()
if(RT_HAVE_CUDA)
  # the whole model on the GPU: fp32 against the CPU (losses, every gradient), bf16 tracking the CPU's loss
  rt_check_test(test_cuda_model ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_model.c ${CMAKE_CURRENT_SOURCE_DIR}/model_twin.c)
  set_tests_properties(test_cuda_model PROPERTIES SKIP_RETURN_CODE 77 LABELS "${RT_GPU_LABELS}")
  # the KV-cache ops of generation against their CPU twins, fp32 and bf16
  rt_check_test(test_cuda_kv ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_kv.c ${CMAKE_CURRENT_SOURCE_DIR}/cuda_twin.c)
  set_tests_properties(test_cuda_kv PROPERTIES SKIP_RETURN_CODE 77 LABELS "${RT_GPU_LABELS}")
  # LoRA and QLoRA on the GPU: the NF4 and dropout ops, adapter gradients and a bf16 QLoRA run vs the CPU
  rt_check_test(test_cuda_lora ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_lora.c ${CMAKE_CURRENT_SOURCE_DIR}/model_twin.c)
  set_tests_properties(test_cuda_lora PROPERTIES SKIP_RETURN_CODE 77 LABELS "${RT_GPU_LABELS}" TIMEOUT 600)
  # training through the CLI on the GPU in bf16: bit-exact resume, fallback, signals, generate and eval
  rt_script_test(train_resume_cuda check_resume.py)
  set_property(TEST train_resume_cuda APPEND PROPERTY ENVIRONMENT "RT_TEST_DEVICE=cuda")
  set_tests_properties(train_resume_cuda PROPERTIES SKIP_RETURN_CODE 77 LABELS "script;gpu")
endif()
