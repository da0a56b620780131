// ChatBridge's default model yaml per model_type (the original's PRETRAINED_MODEL_CONFIG_DICT).
#include "framework/registry.h"

CB_REGISTER_DEFAULT_CONFIG(model, "chatbridge", "pretrain_vicuna", "models/configs/chatbridge.yaml");
