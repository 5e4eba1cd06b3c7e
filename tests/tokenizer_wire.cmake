# A real tokenizer through retort (check_tokenizer_wire.py, run with .venv-hf's python): data text
# --tokenizer, model.tokenizer stored in checkpoints, generate, GGUF and ONNX exports, against HF tokenizers,
# llama.cpp and onnxruntime-genai; and the refusals of mismatched tokenizers.
rt_hf_test(tokenizer_wire check_tokenizer_wire.py)
set_tests_properties(tokenizer_wire PROPERTIES TIMEOUT 600)
