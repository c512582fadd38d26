# The audit log writer (signer/tlog.c): group commit, reopen, torn tails,
# tampering, fail-closed on a full disk. `tlog_test --bench` prints numbers.
add_executable(tlog_test ${CMAKE_CURRENT_LIST_DIR}/tlog_test.c)
target_link_libraries(tlog_test PRIVATE qs_signer)
qs_add_test(signer_tlog COMMAND ${CMAKE_BINARY_DIR}/bin/tlog_test LABELS unit TIMEOUT 180)
