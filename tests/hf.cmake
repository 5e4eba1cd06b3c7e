# Checks whose reference is transformers 5 (torch >= 2.6): run with .venv-hf/bin/python, the virtual
# environment `scripts/bootstrap.sh test` makes, without .pydeps on the path (its packages are for Debian's
# python). Not registered when the environment is missing.
set(RT_HF_PYTHON ${CMAKE_SOURCE_DIR}/.venv-hf/bin/python)
if(NOT COMMAND rt_hf_test)
  set(RT_HF_TEST_ENV ${RT_TEST_ENV})
  list(FILTER RT_HF_TEST_ENV EXCLUDE REGEX "^PYTHONPATH=")
  # rt_hf_test(NAME script args...): like rt_script_test, with .venv-hf's python.
  function(rt_hf_test name script)
    if(NOT EXISTS ${RT_HF_PYTHON})
      message(STATUS "retort: ${RT_HF_PYTHON} missing; ${name} is not registered (scripts/bootstrap.sh test)")
      return()
    endif()
    add_test(NAME ${name} COMMAND ${RT_HF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/${script} ${ARGN})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${RT_HF_TEST_ENV}" LABELS "script;hf")
  endfunction()
endif()
