# End-to-end learning checks (tests/integration/conditioning.py): a tiny stage 0 once (fixture), then
# stage-1 runs on images, audio and videos whose per-item captions must follow their media.
set(CB_COND python3 ${CMAKE_CURRENT_LIST_DIR}/conditioning.py --bin ${CMAKE_BINARY_DIR}/bin
    --work ${CMAKE_BINARY_DIR}/tests/conditioning)
add_test(NAME "conditioning: stage 0 (the tiny frozen LLaMA)" COMMAND ${CB_COND} stage0)
set_tests_properties("conditioning: stage 0 (the tiny frozen LLaMA)" PROPERTIES LABELS integration
                     FIXTURES_SETUP cb_cond_lm)
foreach(phase images audio videos)
  add_test(NAME "conditioning: stage 1 on ${phase} follows the media" COMMAND ${CB_COND} ${phase})
  set_tests_properties("conditioning: stage 1 on ${phase} follows the media" PROPERTIES LABELS integration
                       FIXTURES_REQUIRED cb_cond_lm)
endforeach()
# Another seed: other random frozen encoders, Q-Former initialisation and data order.
add_test(NAME "conditioning: stage 1 on images follows the media (seed 7)" COMMAND ${CB_COND} --seed 7 images)
set_tests_properties("conditioning: stage 1 on images follows the media (seed 7)" PROPERTIES LABELS integration
                     FIXTURES_REQUIRED cb_cond_lm)
