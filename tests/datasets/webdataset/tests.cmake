cb_add_test(test_webdataset LABELS unit SOURCES datasets/webdataset/test_webdataset.cpp datasets/webdataset/write_tar.cpp
            support/make_media.cpp LIBS cb_datasets)
# chatbridge-train from tar shards, with a resume (needs the conditioning tests' stage-0 LLaMA).
add_test(NAME "webdataset: chatbridge-train from tar shards resumes at the saved shard position"
         COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/train_from_shards.py --bin ${CMAKE_BINARY_DIR}/bin
                 --cond ${CMAKE_BINARY_DIR}/tests/conditioning --work ${CMAKE_BINARY_DIR}/tests/train_from_shards)
set_tests_properties("webdataset: chatbridge-train from tar shards resumes at the saved shard position"
                     PROPERTIES LABELS integration FIXTURES_REQUIRED cb_cond_lm)
