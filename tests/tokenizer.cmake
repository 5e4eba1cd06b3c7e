# Tokenizers: UTF-8, Unicode properties and NFC (test_unicode), and the pre-tokenizer splitters and NFC
# against HF tokenizers itself and the regex module (check_pretokenize.py, run with .venv-hf's python).
rt_check_test(test_unicode ${CMAKE_CURRENT_SOURCE_DIR}/test_unicode.c)
add_executable(unicode_harness ${CMAKE_CURRENT_SOURCE_DIR}/unicode_harness.c ${CMAKE_CURRENT_SOURCE_DIR}/harness.c)
target_link_libraries(unicode_harness PRIVATE retort_core)
rt_hf_test(pretokenize_hf check_pretokenize.py $<TARGET_FILE:unicode_harness>)
set_tests_properties(pretokenize_hf PROPERTIES LABELS "script;sanitize")
add_executable(tokenizer_harness ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_harness.c
                                 ${CMAKE_CURRENT_SOURCE_DIR}/harness.c)
target_link_libraries(tokenizer_harness PRIVATE retort_core)
# The BPE and SentencePiece tokenizers: llama.cpp's real vocabularies (unpacked by
# scripts/fetch_llama_cpp_src.sh into tests/ref/llama-cpp-python, never committed) and tokenizer.json files
# rebuilt from them, against the .out ids and HF tokenizers (check_tokenizer_vocab.py); tokenizers trained
# here with tokenizers and sentencepiece, as tokenizer.json and GGUF, against HF tokenizers
# (check_tokenizer_trained.py).
rt_hf_test(tokenizer_vocab check_tokenizer_vocab.py $<TARGET_FILE:tokenizer_harness>)
set_tests_properties(tokenizer_vocab PROPERTIES LABELS "script;sanitize" TIMEOUT 600)
rt_hf_test(tokenizer_trained check_tokenizer_trained.py $<TARGET_FILE:tokenizer_harness>)
set_tests_properties(tokenizer_trained PROPERTIES LABELS "script;sanitize" TIMEOUT 600)
rt_check_test(test_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer.c)
