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
  if(RT_CUDA_EMU AND NOT RT_CUDA_EMU_TSAN)
    # on the emulator: the real bf16 CUDA path through the CLI, with the interrupted run cut to 20 steps
    set_property(TEST train_resume_cuda APPEND PROPERTY ENVIRONMENT RT_TEST_RESUME_STEPS=20 OMP_WAIT_POLICY=passive)
    set_tests_properties(train_resume_cuda PROPERTIES LABELS "script;gpu;emu")
  endif()
endif()
if(RT_HAVE_CUDA AND NOT RT_CUDA_EMU)
  # no GPU needed: what ptxas made of every kernel (tests/ptxas_record.sh keeps it at build time), recorded
  # in ptxas_report.txt; fails on a register spill or a launch bound the registers cannot meet
  rt_script_test(cuda_ptxas check_ptxas.py ${CMAKE_BINARY_DIR})
endif()
if(RT_CUDA_EMU)
  # The emulator resumes a block's threads in one order per run, so a missing barrier passes under some
  # orders and fails under others; cp.async copies land as late as allowed (lazy) or at once (eager). Each
  # twin suite runs under the default (forward, lazy) and again under every entry of RT_EMU_SCHEDULES
  # (schedule/cp.async mode): the set the mutation table in docs/cuda_emulation.md shows catches every
  # injected bug class. OMP_WAIT_POLICY=passive: the CPU twin's idle OpenMP threads would otherwise spin on
  # the cores the emulated kernels run on.
  if(RT_CUDA_EMU_TSAN)
    set(RT_EMU_SCHEDULES "" CACHE STRING "extra RT_EMU_SCHEDULE/RT_EMU_CP_ASYNC pairs the emu tests run under")
  else()
    set(RT_EMU_SCHEDULES "warp/eager" CACHE STRING "extra RT_EMU_SCHEDULE/RT_EMU_CP_ASYNC pairs the emu tests run under")
  endif()
  foreach(t test_cuda_ops test_cuda_kv test_cuda_lora test_cuda_model)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT OMP_WAIT_POLICY=passive)
    foreach(pair ${RT_EMU_SCHEDULES})
      string(REPLACE "/" ";" sm "${pair}")
      list(GET sm 0 schedule)
      list(GET sm 1 copies)
      set(variant ${t}_${schedule}_${copies})
      add_test(NAME ${variant} COMMAND ${t})
      get_test_property(${t} TIMEOUT timeout)
      set_tests_properties(${variant} PROPERTIES SKIP_RETURN_CODE 77 LABELS "unit;emu"
        ENVIRONMENT "${RT_TEST_ENV};OMP_WAIT_POLICY=passive;RT_EMU_SCHEDULE=${schedule};RT_EMU_CP_ASYNC=${copies}")
      if(timeout)
        set_tests_properties(${variant} PROPERTIES TIMEOUT ${timeout})
      endif()
    endforeach()
  endforeach()
endif()
if(RT_CUDA_EMU_TSAN)
  # The ThreadSanitizer variant (docs/cuda_emulation.md): the four suites once, under the default schedule
  # (TSan reports a race whatever order the threads ran in), labelled tsan as well. The CPU twins run one
  # thread (libgomp is not instrumented: its workers would be reported), the training runs stop after two
  # steps (every step runs the same kernels at the same shapes), and any report fails the test (exit 66).
  # test_cuda_ops, the longest under TSan, runs as two tests, its fp32 and bf16 cases, so the two cores share
  # it; COST (seconds measured on 2 cores) has ctest -j start the longest first in a clean build too.
  add_test(NAME test_cuda_ops_bf16 COMMAND test_cuda_ops)
  set_tests_properties(test_cuda_ops_bf16 PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "${RT_TEST_ENV}")
  set_property(TEST test_cuda_ops APPEND PROPERTY ENVIRONMENT CK_RUN_CASE=fp32)
  set_property(TEST test_cuda_ops_bf16 APPEND PROPERTY ENVIRONMENT CK_RUN_CASE=bf16)
  set_tests_properties(test_cuda_ops_bf16 PROPERTIES COST 84)
  set_tests_properties(test_cuda_model PROPERTIES COST 70)
  set_tests_properties(test_cuda_ops PROPERTIES COST 52)
  set_tests_properties(test_cuda_lora PROPERTIES COST 31)
  foreach(t test_cuda_ops test_cuda_ops_bf16 test_cuda_kv test_cuda_lora test_cuda_model)
    set_tests_properties(${t} PROPERTIES LABELS "unit;gpu;emu;tsan" TIMEOUT 900)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT OMP_NUM_THREADS=1 RT_TEST_CPU_THREADS=1
                 RT_TEST_STEPS_MAX=2 "TSAN_OPTIONS=halt_on_error=0:exitcode=66")
  endforeach()
endif()
