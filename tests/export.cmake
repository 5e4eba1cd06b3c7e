# Export: GGUF files read back by the gguf package (llama.cpp's gguf-py), a LoRA adapter GGUF, the hardened
# reader against damaged files (label sanitize: CI repeats it under ASan/UBSan, where a bad read aborts).
rt_script_test(gguf_export check_gguf.py)
set_tests_properties(gguf_export PROPERTIES LABELS "script;sanitize")
# The GGUF files in llama.cpp itself (llama-cpp-python): logits, tokenization, greedy text, LoRA adapters.
rt_script_test(llama_cpp check_llama_cpp.py)
