# The audit log writer (signer/audit/tlog.c): group commit, reopen, torn tails,
# tampering, fail-closed on a full disk. `tlog_test --bench` prints numbers.
# With the fault points armed by $QS_FAULT (signer/daemon/fault.h): the crash
# tests of the log repair set it in a child process.
add_executable(tlog_test ${CMAKE_CURRENT_LIST_DIR}/tlog_test.c
               ${PROJECT_SOURCE_DIR}/signer/daemon/fault.c)
target_compile_definitions(tlog_test PRIVATE QS_FAULT_INJECTION)
target_link_libraries(tlog_test PRIVATE qs_signer)
qs_add_test(signer_tlog COMMAND ${CMAKE_BINARY_DIR}/bin/tlog_test LABELS unit TIMEOUT 180)

# The signature index derived from the audit log (signer/store/sigindex.c), on a
# real log and SQLite store, with a kill -9 before an index transaction.
add_executable(sigindex_test ${CMAKE_CURRENT_LIST_DIR}/../store/sigindex_test.c
               ${PROJECT_SOURCE_DIR}/signer/daemon/fault.c)
target_compile_definitions(sigindex_test PRIVATE QS_FAULT_INJECTION)
target_link_libraries(sigindex_test PRIVATE qs_signer)
qs_add_test(signer_sigindex COMMAND ${CMAKE_BINARY_DIR}/bin/sigindex_test LABELS unit TIMEOUT 120)
