cb_add_test(test_media_decode LABELS unit SOURCES datasets/media/test_media_decode.cpp support/make_media.cpp LIBS cb_datasets)
cb_add_test(test_valor_crop_flip LABELS unit SOURCES datasets/media/test_valor_crop_flip.cpp support/make_media.cpp
            support/process_util.cpp support/torch_peer.cpp LIBS cb_datasets)
