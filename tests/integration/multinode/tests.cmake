# Multi-node training across hosts made of network namespaces, with faults (multinode.py). Label
# `multinode`; root only (each test skips with one line elsewhere); one at a time (RUN_SERIAL): they
# time failures and share the fixture's references.
set(CB_MULTINODE python3 ${CMAKE_CURRENT_LIST_DIR}/multinode.py --bin ${CMAKE_BINARY_DIR}/bin
    --work ${CMAKE_BINARY_DIR}/tests/multinode)
add_test(NAME "multinode: setup (tiny data, stage 0, one-host references)" COMMAND ${CB_MULTINODE} setup)
set_tests_properties("multinode: setup (tiny data, stage 0, one-host references)" PROPERTIES LABELS multinode
                     FIXTURES_SETUP cb_multinode RUN_SERIAL TRUE TIMEOUT 600)
foreach(scenario hosts_2x1 hosts_2x2 debian_hosts torchrun host_lost link_cut_short link_cut_long slow_link save_killed enospc
                 preemption watchdog)
  add_test(NAME "multinode: ${scenario}" COMMAND ${CB_MULTINODE} ${scenario})
  set_tests_properties("multinode: ${scenario}" PROPERTIES LABELS multinode FIXTURES_REQUIRED cb_multinode
                       RUN_SERIAL TRUE SKIP_RETURN_CODE 77 TIMEOUT 400)
endforeach()
# Launcher checks that start no training: no fixture.
foreach(scenario same_node_rank join_timeout)
  add_test(NAME "multinode: ${scenario}" COMMAND ${CB_MULTINODE} ${scenario})
  set_tests_properties("multinode: ${scenario}" PROPERTIES LABELS multinode RUN_SERIAL TRUE SKIP_RETURN_CODE 77
                       TIMEOUT 120)
endforeach()
