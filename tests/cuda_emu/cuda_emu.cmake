# The emulation build (-DRT_CUDA_EMU=ON, its own build directory; docs/cuda_emulation.md): cuda/*.cu
# translated (translate.cmake) and compiled as host C++ against the emulator in this folder, in place of the
# nvcc-built backend. Included by the top-level CMakeLists.txt; sets RT_HAVE_CUDA so the GPU twin tests
# register, and labels them emu there.
enable_language(CXX)
set(RT_EMU_DIR ${CMAKE_SOURCE_DIR}/tests/cuda_emu)
# The kernel sources to translate: cuda/ itself, or a mutated copy of it (tests/cuda_emu/mutate.py).
set(RT_EMU_CUDA_DIR ${CMAKE_SOURCE_DIR}/cuda CACHE PATH "the cuda/ folder the emulation build translates")
file(GLOB RT_CUDA_SOURCES CONFIGURE_DEPENDS ${RT_EMU_CUDA_DIR}/*.cu)
set(RT_EMU_TRANSLATED)
foreach(cu ${RT_CUDA_SOURCES})
  get_filename_component(name ${cu} NAME_WE)
  set(out ${CMAKE_BINARY_DIR}/cuda_emu/${name}.cpp)
  add_custom_command(OUTPUT ${out}
                     COMMAND ${CMAKE_COMMAND} -DIN=${cu} -DOUT=${out} -P ${RT_EMU_DIR}/translate.cmake
                     DEPENDS ${cu} ${RT_EMU_DIR}/translate.cmake
                     COMMENT "cuda emulator: translating cuda/${name}.cu" VERBATIM)
  list(APPEND RT_EMU_TRANSLATED ${out})
endforeach()
add_library(rt_cuda OBJECT ${RT_EMU_TRANSLATED} ${RT_EMU_DIR}/emu_runtime.cpp ${RT_EMU_DIR}/emu_device.cpp
                           ${RT_EMU_DIR}/emu_ptx.cpp ${RT_EMU_DIR}/emu_cublaslt.cpp)
target_link_libraries(rt_cuda PUBLIC rt_deps)
target_include_directories(rt_cuda PRIVATE ${RT_EMU_DIR}/include ${RT_EMU_DIR} ${RT_EMU_CUDA_DIR})
# The PTX wrappers of attention_mma.cu come from rt_emu_prelude.h. The grid limits (cuda_internal.h) are
# lowered so that the strided and capped paths run at test shapes: grid.y past 4 tiles or rows, grid-stride
# loops past 4 blocks.
target_compile_definitions(rt_cuda PRIVATE RT_ATT_MMA_EMULATION=1 RT_CUDA_MAX_GRID_Y=4 RT_CUDA_GRID_CAP=4u)
set_target_properties(rt_cuda PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
target_compile_options(rt_cuda PRIVATE -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unknown-pragmas -g)
if(RT_CUDA_EMU_TSAN)
  # Only the kernels and the emulator are instrumented: the C code around them (the CPU twins the tests
  # compare with, the test programs) runs on the host thread alone and is left as it is, which also keeps
  # OpenMP's uninstrumented runtime out of the picture.
  target_compile_definitions(rt_cuda PRIVATE RT_EMU_TSAN=1)
  target_compile_options(rt_cuda PRIVATE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(rt_deps INTERFACE -fsanitize=thread)
endif()
list(APPEND RT_OBJECTS $<TARGET_OBJECTS:rt_cuda>)
target_compile_definitions(rt_deps INTERFACE RT_HAVE_CUDA=1 RT_CUDA_EMU=1)
target_link_libraries(rt_deps INTERFACE stdc++)
set(RT_HAVE_CUDA ON)
message(STATUS "retort: CUDA emulation build: cuda/*.cu on the CPU emulator (tests/cuda_emu), no GPU, no nvcc")
