# Style: every C source and header is as clang-format (.clang-format) would write it.
find_program(RT_CLANG_FORMAT NAMES clang-format clang-format-14 clang-format-15 clang-format-16)
if(RT_CLANG_FORMAT)
  file(GLOB_RECURSE RT_STYLE_SOURCES CONFIGURE_DEPENDS
       ${CMAKE_SOURCE_DIR}/csrc/*.c ${CMAKE_SOURCE_DIR}/csrc/*.h ${CMAKE_SOURCE_DIR}/cuda/*.cu
       ${CMAKE_SOURCE_DIR}/cuda/*.h ${CMAKE_SOURCE_DIR}/trainer/*.c ${CMAKE_SOURCE_DIR}/trainer/*.h
       ${CMAKE_SOURCE_DIR}/tests/*.c ${CMAKE_SOURCE_DIR}/tests/*.h
       ${CMAKE_SOURCE_DIR}/tests/cuda_emu/*.cpp ${CMAKE_SOURCE_DIR}/tests/cuda_emu/*.h
       ${CMAKE_SOURCE_DIR}/tests/cuda_emu/include/*.h ${CMAKE_SOURCE_DIR}/tests/cuda_emu/include/cub/device/*.cuh)
  add_test(NAME clang_format COMMAND ${RT_CLANG_FORMAT} --dry-run -Werror ${RT_STYLE_SOURCES})
  set_tests_properties(clang_format PROPERTIES LABELS style)
else()
  message(STATUS "retort: clang-format not found; the style test is not registered (scripts/bootstrap.sh test installs it)")
endif()
