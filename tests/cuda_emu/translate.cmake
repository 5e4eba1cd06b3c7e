# Emulation build: turns one cuda/*.cu into host C++ (cmake -DIN=x.cu -DOUT=x.cpp -P translate.cmake).
# Only the two constructs a host compiler cannot parse are rewritten, on their own lines, so every line keeps
# its number (and #line keeps the file name): diagnostics, __FILE__ and __LINE__ point into cuda/.
#   k<<<grid, block, smem, stream>>>(args)  ->  k << rt_emu::launch_cfg(__FILE__, __LINE__, grid, block,
#                                                   smem, stream) >> rt_emu::launch_args(args)
#     (<< and >> associate left to right, so the kernel expression before <<< needs no parsing);
#   extern __shared__ [__align__(n)] T name[];  ->  T *name = (T *)rt_emu::dynamic_smem();
#   __shared__ T a[N], b[M];  ->  static char rt_emu_tag_a; T (&a)[N] = rt_emu::block_shared<T[N]>(&rt_emu_tag_a);
#     (and the same for b): storage of the running block, found by the address of a static tag that is
#     distinct per declaration and per template instantiation, filled with 0xff bytes at each block's start.
# Everything else (__global__, __shared__, intrinsics, the inline-PTX wrappers) is the emulator's headers'.
file(READ "${IN}" text)
string(REGEX REPLACE
       "extern __shared__ (__align__\\([0-9]+\\) )?([A-Za-z_][A-Za-z_0-9 ]*[A-Za-z_0-9]) ([A-Za-z_][A-Za-z_0-9]*)\\[\\];"
       "\\2 *\\3 = (\\2 *)rt_emu::dynamic_smem();" text "${text}")
set(static_shared "__shared__ ([A-Za-z_][A-Za-z_0-9]*) ([^;]*);")
string(REGEX MATCH "${static_shared}" decl "${text}")
while(decl)
  set(type "${CMAKE_MATCH_1}")
  string(REPLACE "," ";" parts "${CMAKE_MATCH_2}")
  set(rewritten "")
  foreach(part ${parts})
    string(STRIP "${part}" part)
    if(NOT part MATCHES "^([A-Za-z_][A-Za-z_0-9]*)(\\[[^]]+\\])$")
      message(FATAL_ERROR "${IN}: a static __shared__ declarator '${part}' translate.cmake cannot rewrite")
    endif()
    string(APPEND rewritten "static char rt_emu_tag_${CMAKE_MATCH_1}; ${type} (&${CMAKE_MATCH_1})${CMAKE_MATCH_2} = "
           "rt_emu::block_shared<${type} ${CMAKE_MATCH_2}>(&rt_emu_tag_${CMAKE_MATCH_1}); ")
  endforeach()
  string(REPLACE "${decl}" "${rewritten}" text "${text}")
  string(REGEX MATCH "${static_shared}" decl "${text}")
endwhile()
string(REPLACE "<<<" " << rt_emu::launch_cfg(__FILE__, __LINE__, " text "${text}")
string(REGEX REPLACE ">>>([ \t\n]*)\\(" ")\\1>> rt_emu::launch_args(" text "${text}")
foreach(left "<<<" ">>>" "__shared__")
  string(FIND "${text}" "${left}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${IN}: a '${left}' translate.cmake cannot rewrite (tests/cuda_emu/translate.cmake)")
  endif()
endforeach()
set(out "#include \"rt_emu_prelude.h\"\n#line 1 \"${IN}\"\n${text}")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL out)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${out}")
