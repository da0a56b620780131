cb_add_test(test_config LABELS unit
            SOURCES config/test_config_node.cpp config/test_config.cpp config/test_registry.cpp config/test_app_options.cpp
            LIBS cb_models)

# chatbridge-train end to end: the shipped config resolves and prints; without --print-config the run
# writes the resolved config to run.output_dir and stops at the task lookup (training lands later).
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
add_test(NAME "chatbridge-train: writes config, stops at the task lookup"
         COMMAND chatbridge-train --threads 1 --cfg-path ${CMAKE_SOURCE_DIR}/train_configs/chatbridge_pretrain.yaml
                 --options run.output_dir=${CMAKE_BINARY_DIR}/tests/chatbridge-train-out)
set_tests_properties("chatbridge-train: writes config, stops at the task lookup" PROPERTIES LABELS unit
                     PASS_REGULAR_EXPRESSION "resolved config written to .*task 'tri_pretrain' is not registered")
