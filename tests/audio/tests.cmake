cb_add_test(test_beats LABELS golden SOURCES audio/test_beats.cpp LIBS cb_models)
cb_add_test(test_audio_pipeline LABELS golden SOURCES audio/test_audio_pipeline.cpp LIBS cb_datasets)
cb_add_test(test_wav_reader LABELS unit SOURCES audio/test_wav_reader.cpp images/make_media.cpp LIBS cb_datasets)
