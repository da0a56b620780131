cb_add_test(test_conversation LABELS unit SOURCES chat/test_conversation.cpp images/make_media.cpp LIBS cb_runners)
cb_add_test(test_chat_server LABELS integration SOURCES chat/test_chat_server.cpp images/make_media.cpp LIBS cb_runners PkgConfig::HTTPLIB)
cb_add_test(test_chat_page LABELS integration SOURCES chat/test_chat_page.cpp chat/headless_chromium.cpp images/make_media.cpp LIBS cb_runners PkgConfig::HTTPLIB)
