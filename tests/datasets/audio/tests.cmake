cb_add_test(test_audio_pipeline LABELS golden SOURCES datasets/audio/test_audio_pipeline.cpp support/make_media.cpp LIBS cb_datasets)
cb_add_test(test_wav_reader LABELS unit SOURCES datasets/audio/test_wav_reader.cpp support/make_media.cpp LIBS cb_datasets)
