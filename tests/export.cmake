# Export: GGUF files read back by the gguf package (llama.cpp's gguf-py), a LoRA adapter GGUF, the hardened
# reader against damaged files.
rt_script_test(gguf_export check_gguf.py)
# The GGUF files in llama.cpp itself (llama-cpp-python): logits, tokenization, greedy text, LoRA adapters.
rt_script_test(llama_cpp check_llama_cpp.py)
