# The whole model and the training loop: PyTorch reference, bit-exact resume, training CLI.
add_executable(model_harness ${CMAKE_CURRENT_SOURCE_DIR}/model_harness.c ${CMAKE_CURRENT_SOURCE_DIR}/harness.c)
target_link_libraries(model_harness PRIVATE retort_core)
rt_script_test(model_torch check_model_torch.py $<TARGET_FILE:model_harness>)
rt_script_test(train_resume check_resume.py)
rt_script_test(cli_errors check_cli_errors.py)
rt_check_test(test_batcher ${CMAKE_CURRENT_SOURCE_DIR}/test_batcher.c)
rt_script_test(eval_torch check_eval_torch.py)
# Stage 1 of distillation: retort synth against PyTorch, resume, stops, prompts.
rt_script_test(synth_torch check_synth.py)
# Stage 2 of distillation: retort distill's loss against PyTorch in every mode and divergence, refusals,
# frozen teacher, resume.
rt_script_test(distill_torch check_distill.py)
# Generation with the KV cache: cached logits and rt_generate against the whole-sequence forward.
rt_check_test(test_kv_cache ${CMAKE_CURRENT_SOURCE_DIR}/test_kv_cache.c)
# LoRA / QLoRA: NF4 against a PyTorch reference of the algorithm, the adapted layers' forward and backward
# against PyTorch, step 0 equal to the base, a frozen base; the CLI: finetune, resume, merge, refusals.
add_executable(lora_harness ${CMAKE_CURRENT_SOURCE_DIR}/lora_harness.c ${CMAKE_CURRENT_SOURCE_DIR}/harness.c)
target_link_libraries(lora_harness PRIVATE retort_core)
rt_script_test(lora_torch check_lora_torch.py $<TARGET_FILE:lora_harness>)
rt_script_test(finetune_cli check_finetune.py)
