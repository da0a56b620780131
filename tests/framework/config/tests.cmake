cb_add_test(test_config LABELS unit
            SOURCES framework/config/test_config_node.cpp framework/config/test_config.cpp
                    framework/config/test_registry.cpp framework/config/test_app_options.cpp
                    framework/config/test_config_schema.cpp
            LIBS cb_models)

# chatbridge-train end to end: the shipped config resolves and prints; without --print-config the run
# writes the resolved config to run.output_dir, then stops before loading anything with an error naming
# the key, the placeholder LLaMA folder of the base yaml and where it is set; --dry-run describes the
# full-size model without allocating it.
add_test(NAME "chatbridge-train: --print-config"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml --print-config
                 --options run.init_lr 3e-5)
set_tests_properties("chatbridge-train: --print-config" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "init_lr: 3e-05")
add_test(NAME "chatbridge-train: --list"
         COMMAND chatbridge-train --list)
set_tests_properties("chatbridge-train: --list" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "chatbridge[^\n]*\\(default configs: pretrain_vicuna\\)")
add_test(NAME "chatbridge-train: unknown option key"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml --print-config
                 --options run.init_lrr=1)
set_tests_properties("chatbridge-train: unknown option key" PROPERTIES LABELS unit WILL_FAIL TRUE)
add_test(NAME "chatbridge-train: writes config, names the missing LLaMA folder"
         COMMAND chatbridge-train --threads 1 --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml
                 --options run.output_dir=${CMAKE_BINARY_DIR}/tests/chatbridge-train-out)
set_tests_properties("chatbridge-train: writes config, names the missing LLaMA folder" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "resolved config written to .*error: model\\.llama_model: /PATH/TO/vicuna-13b, set in models/configs/chatbridge\\.yaml \\(line [0-9]+\\), is not a folder [^\n]*; give the path with --options model\\.llama_model=PATH")
add_test(NAME "chatbridge-train: --dry-run of the full-size model"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml --dry-run)
set_tests_properties("chatbridge-train: --dry-run of the full-size model" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "visual_encoder \\(EVA-ViT-G\\): 985\\.9M total.*Qformer \\(Q-Former\\): 105\\.1M total.*llama_model \\(LLaMA\\): 13\\.0B total.*memory plan per rank.*llama_model .*activations \\(estimate\\).*total per rank: [0-9.]+ GiB")
add_test(NAME "chatbridge-train: --dry-run of a llama_causal_lm (stage 0)"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/tiny_lm_pretrain.yaml --dry-run)
set_tests_properties("chatbridge-train: --dry-run of a llama_causal_lm (stage 0)" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "model\\.layers x4  803\\.8K  \\(trainable\\).*total: 1\\.1M \\(1059968\\), trainable: 1\\.1M \\(1059968\\).*lm_head +128000 +128000 .*total per rank:.*budget .*: fits")

# docs/config-keys.md is what the binary prints: regenerate it with
# `build/bin/chatbridge-train --config-reference > docs/config-keys.md` after changing a declaration.
add_test(NAME "chatbridge-train: docs/config-keys.md is up to date"
         COMMAND sh -c "$<TARGET_FILE:chatbridge-train> --config-reference | diff -u ${CMAKE_SOURCE_DIR}/docs/config-keys.md - \
                        || { echo 'stale: run chatbridge-train --config-reference > docs/config-keys.md'; exit 1; }")
set_tests_properties("chatbridge-train: docs/config-keys.md is up to date" PROPERTIES LABELS unit)
# A q4_0 LLaMA holds 13.0B parameters in 7.3 GB of packed bytes: the count is of parameters. It serves
# inference only: the plan says that it cannot train.
add_test(NAME "chatbridge-train: --dry-run counts a q4_0 LLaMA's parameters, not its bytes"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml --dry-run
                 --options model.llama_precision=q4_0 run.device=cpu)
set_tests_properties("chatbridge-train: --dry-run counts a q4_0 LLaMA's parameters, not its bytes" PROPERTIES
                     LABELS unit PASS_REGULAR_EXPRESSION "llama_model \\(LLaMA\\): 13\\.0B total.*total: 14\\.2B.*\ntraining: not possible: the LLaMA is q4_0")
add_test(NAME "chatbridge-train: --print-config lists the defaults of absent keys"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml --print-config)
set_tests_properties("chatbridge-train: --print-config lists the defaults of absent keys" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "# Defaults of the keys not set above.*\n# run:\n#   runner: runner_base\n.*#   log_freq: 50\n")
# A key kept only so that the original's configs load says, when set, that it does nothing here.
add_test(NAME "chatbridge-train: a key that is not read warns with the reason"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/tiny_lm_pretrain.yaml --print-config
                 --options run.num_workers=4)
set_tests_properties("chatbridge-train: a key that is not read warns with the reason" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "run\\.num_workers is set in [^\n]* but has no effect here: accepted")
# The schema is one list for every model and task: a key only another one reads says so when set.
add_test(NAME "chatbridge-train: a key of another model or task warns that it has no effect"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/tiny_lm_pretrain.yaml --print-config
                 --options model.freeze_vit=false run.valor_data_opts_path=x.json)
set_tests_properties("chatbridge-train: a key of another model or task warns that it has no effect" PROPERTIES
                     LABELS unit PASS_REGULAR_EXPRESSION
                     "run\\.valor_data_opts_path is set in --options but has no effect with run\\.task 'lm_pretrain'.*model\\.freeze_vit is set in --options but has no effect with model\\.arch 'llama_causal_lm' \\(read with model\\.arch chatbridge only\\)")
# Under a launcher every rank may fail the same way: each error line says whose it is.
add_test(NAME "chatbridge-train: an error under a launcher names its rank"
         COMMAND ${CMAKE_COMMAND} -E env RANK=1 WORLD_SIZE=2 $<TARGET_FILE:chatbridge-train> --cfg-path /nonexistent.yaml)
set_tests_properties("chatbridge-train: an error under a launcher names its rank" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "chatbridge-train \\(rank 1 of 2\\): error: [^\n]*nonexistent\\.yaml")
# Before stage 0 has run, a tiny config's dry run describes Vicuna-13B: the warning says what to run.
add_test(NAME "chatbridge-train: a tiny dry run without stage 0's LLaMA says to run stage 0"
         COMMAND chatbridge-train --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/tiny_pretrain.yaml --dry-run
                 --options model.llama_model=/nonexistent/llama)
set_tests_properties("chatbridge-train: a tiny dry run without stage 0's LLaMA says to run stage 0" PROPERTIES
                     LABELS unit PASS_REGULAR_EXPRESSION "describing Vicuna-13B's architecture \\(a tiny config's LLaMA is stage 0's export")
