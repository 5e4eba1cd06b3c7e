# Export: GGUF files read back by the gguf package (llama.cpp's gguf-py), a LoRA adapter GGUF, the hardened
# reader against damaged files.
rt_script_test(gguf_export check_gguf.py)
