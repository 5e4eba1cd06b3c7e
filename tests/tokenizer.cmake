# Tokenizers: UTF-8, Unicode properties and NFC (test_unicode), and the pre-tokenizer splitters and NFC
# against HF tokenizers itself and the regex module (check_pretokenize.py, run with .venv-hf's python).
rt_check_test(test_unicode ${CMAKE_CURRENT_SOURCE_DIR}/test_unicode.c)
add_executable(unicode_harness ${CMAKE_CURRENT_SOURCE_DIR}/unicode_harness.c)
target_link_libraries(unicode_harness PRIVATE retort_core)
rt_hf_test(pretokenize_hf check_pretokenize.py $<TARGET_FILE:unicode_harness>)
set_tests_properties(pretokenize_hf PROPERTIES LABELS "script;sanitize")
