cb_add_test(test_conversation LABELS unit SOURCES runners/serve/test_conversation.cpp support/make_media.cpp LIBS cb_runners)
cb_add_test(test_chat_server LABELS integration SOURCES runners/serve/test_chat_server.cpp support/make_media.cpp
            LIBS cb_runners PkgConfig::HTTPLIB)
cb_add_test(test_chat_page LABELS integration
            SOURCES runners/serve/test_chat_page.cpp runners/serve/headless_chromium.cpp support/make_media.cpp
            LIBS cb_runners PkgConfig::HTTPLIB)
cb_add_test(test_chat_device LABELS unit SOURCES runners/serve/test_chat_device.cpp support/make_media.cpp
            LIBS cb_runners)
cb_add_test(test_chat_terminal LABELS unit SOURCES runners/serve/test_chat_terminal.cpp support/make_media.cpp
            LIBS cb_runners)
