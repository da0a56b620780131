cb_add_test(test_llama LABELS golden SOURCES models/test_llama.cpp LIBS cb_models)
cb_add_test(test_llama_generation LABELS unit SOURCES models/test_generation.cpp LIBS cb_models)
cb_add_test(test_llama_hf LABELS unit SOURCES models/test_llama_hf.cpp LIBS cb_models)
cb_add_test(test_frozen_linear LABELS unit SOURCES models/test_frozen_linear.cpp LIBS cb_models)
cb_add_test(test_llama_precision LABELS golden SOURCES models/test_llama_precision.cpp LIBS cb_models)
cb_add_test(test_llama_decode_step LABELS unit SOURCES models/test_llama_decode_step.cpp LIBS cb_models)
cb_add_test(test_beam_search LABELS unit SOURCES models/test_beam_search.cpp LIBS cb_models)
cb_add_test(test_eva_vit LABELS golden SOURCES models/test_eva_vit.cpp LIBS cb_models)
cb_add_test(test_qformer LABELS golden SOURCES models/test_qformer.cpp LIBS cb_models)
cb_add_test(test_vision_pretrained_files LABELS unit SOURCES models/test_pretrained_files.cpp LIBS cb_models cb_ckpt_expect)
cb_add_test(test_beats LABELS golden SOURCES models/test_beats.cpp LIBS cb_models cb_ckpt_expect)
cb_add_test(test_tokenizer_golden LABELS golden SOURCES models/test_tokenizer_golden.cpp LIBS cb_models)
cb_add_test(test_tokenizer LABELS unit SOURCES models/test_tokenizer.cpp LIBS cb_models)
cb_add_test(test_chatbridge_golden LABELS golden SOURCES models/test_chatbridge_golden.cpp LIBS cb_models)
cb_add_test(test_chatbridge LABELS unit SOURCES models/test_chatbridge.cpp LIBS cb_models)

# chatbridge-convert --chatbridge: the tiny yaml's model assembled from its parts, written as one
# safetensors file whose keys are ChatBridge's (checked by reading it back with --inspect). The yaml's
# LLaMA (the quickstart's stage-0 export) is replaced by a fresh tiny one described in --options.
add_test(NAME "chatbridge-convert: --chatbridge writes the assembled model's state dict"
         COMMAND sh -c "$<TARGET_FILE:chatbridge-convert> --threads 1 --chatbridge train_configs/tiny_pretrain.yaml --options 'model.tiny_dims.llama_config={vocab_size: 1000, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2}' model.llama_tokenizer=tests/golden/tokenizer.model -o ${CMAKE_BINARY_DIR}/tests/tiny_chatbridge.safetensors && $<TARGET_FILE:chatbridge-convert> --inspect ${CMAKE_BINARY_DIR}/tests/tiny_chatbridge.safetensors"
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties("chatbridge-convert: --chatbridge writes the assembled model's state dict" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "Qformer\\.bert\\.encoder\\.layer\\.0\\.crossattention\\.self\\.key\\.weight.*llama_model\\.lm_head\\.weight.*llama_proj\\.weight")
cb_add_test(test_real_width LABELS slow SOURCES models/test_real_width.cpp LIBS cb_runners cb_models)
