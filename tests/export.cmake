# Export: GGUF files read back by the gguf package (llama.cpp's gguf-py), a LoRA adapter GGUF, the hardened
# reader against damaged files (label sanitize: CI repeats it under ASan/UBSan, where a bad read aborts).
rt_script_test(gguf_export check_gguf.py)
set_tests_properties(gguf_export PROPERTIES LABELS "script;sanitize")
# The GGUF files in llama.cpp itself (llama-cpp-python): logits, tokenization, greedy text, LoRA adapters.
rt_script_test(llama_cpp check_llama_cpp.py)
# The ONNX folders in onnx's checker, onnxruntime and onnxruntime-genai: logits, KV cache, padding, external
# data, tokenizer, greedy text, adapter checkpoints, refused options.
rt_script_test(onnx_runtime check_onnx.py)
set_tests_properties(onnx_runtime PROPERTIES LABELS "script;sanitize")
# The protobuf encoder against the encoding guide's bytes; inline weights or aligned external data.
rt_check_test(test_onnx_writer ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_writer.c)
