# Import: the safetensors reader against files the safetensors package writes (F32, F16, BF16, an unpadded
# header, a sharded folder with its index, metadata) and against hand-made damaged files (label sanitize: CI
# repeats these under ASan/UBSan, where a bad read aborts).
add_executable(safetensors_harness ${CMAKE_CURRENT_SOURCE_DIR}/safetensors_harness.c
                                   ${CMAKE_CURRENT_SOURCE_DIR}/harness.c)
target_link_libraries(safetensors_harness PRIVATE retort_core)
rt_script_test(safetensors_py check_safetensors.py $<TARGET_FILE:safetensors_harness>)
set_tests_properties(safetensors_py PROPERTIES LABELS "script;sanitize")
rt_check_test(test_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/test_safetensors.c)
# One program for both importers' tests: a checkpoint's logits (and greedy ids) for given token ids.
add_executable(ckpt_logits_harness ${CMAKE_CURRENT_SOURCE_DIR}/ckpt_logits_harness.c
                                   ${CMAKE_CURRENT_SOURCE_DIR}/harness.c)
target_link_libraries(ckpt_logits_harness PRIVATE retort_core)
# retort import gguf against llama.cpp's converter (files from transformers models, logits against
# transformers via .venv-hf's python), gguf-py's dequantization and llama.cpp's logits on hand-written and
# llama.cpp-quantized files, refusals. Fetches the llama-cpp-python source package once
# (scripts/fetch_llama_cpp_src.sh).
rt_script_test(import_gguf check_import_gguf.py $<TARGET_FILE:ckpt_logits_harness>)
# llama3 RoPE parameters recovered from rope_freqs.weight vectors made with llama.cpp's converter's formula.
rt_check_test(test_gguf_rope ${CMAKE_CURRENT_SOURCE_DIR}/test_gguf_rope.c)
# retort import hf / export --format hf against transformers: logits and greedy ids of imported Llama (F32,
# BF16, tied, sharded, 4.x config, RoPE scaling, head_dim), Qwen2 and Mistral models, exports reloaded,
# refusals (run with .venv-hf's python).
rt_hf_test(import_hf check_import_hf.py $<TARGET_FILE:ckpt_logits_harness>)
# The same with real tokenizers trained here (Llama 3, Qwen2, Llama 2 SentencePiece): the checkpoint stores the
# folder's tokenizer (retort tokenize / generate against AutoTokenizer and transformers), export hf and GGUF
# carry it (AutoTokenizer, llama.cpp via tests/llama_cpp_tokens.py with Debian's python), GGUF -> import ->
# export hf writes it as tokenizer.json, import peft keeps it, refusals.
rt_hf_test(import_hf_tokenizer check_import_hf_tokenizer.py $<TARGET_FILE:ckpt_logits_harness>)
# retort export --format peft / import peft against PEFT: exported adapters load in PeftModel with retort's
# logits and merge, PEFT adapters import with PEFT's logits, merge and loss and continue fine-tuning, refusals.
rt_hf_test(peft check_peft.py $<TARGET_FILE:ckpt_logits_harness>)
