# The daemon's modules are one library (so tests can link them) plus a thin
# main().
add_library(qs_signer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/log.c
  ${CMAKE_CURRENT_LIST_DIR}/fault.c
  ${CMAKE_CURRENT_LIST_DIR}/config.c
  ${CMAKE_CURRENT_LIST_DIR}/policy.c
  ${CMAKE_CURRENT_LIST_DIR}/store.c
  ${CMAKE_CURRENT_LIST_DIR}/store_sqlite.c
  ${CMAKE_CURRENT_LIST_DIR}/store_pg.c
  ${CMAKE_CURRENT_LIST_DIR}/keyring.c
  ${CMAKE_CURRENT_LIST_DIR}/privsep.c
  ${CMAKE_CURRENT_LIST_DIR}/privsep_wire.c
  ${CMAKE_CURRENT_LIST_DIR}/privsep_guard.c
  ${CMAKE_CURRENT_LIST_DIR}/ratelimit.c
  ${CMAKE_CURRENT_LIST_DIR}/server.c
  ${CMAKE_CURRENT_LIST_DIR}/probe.c
  ${CMAKE_CURRENT_LIST_DIR}/auth.c
  ${CMAKE_CURRENT_LIST_DIR}/sign.c
  ${CMAKE_CURRENT_LIST_DIR}/requests.c
  ${CMAKE_CURRENT_LIST_DIR}/approval.c
  ${CMAKE_CURRENT_LIST_DIR}/reqkinds.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc_table.c
  ${CMAKE_CURRENT_LIST_DIR}/policy_ext.c
  ${CMAKE_CURRENT_LIST_DIR}/harden.c
  ${CMAKE_CURRENT_LIST_DIR}/metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/backup.c
  ${CMAKE_CURRENT_LIST_DIR}/maint.c
  ${CMAKE_CURRENT_LIST_DIR}/tlog.c
  ${CMAKE_CURRENT_LIST_DIR}/sigindex.c
  ${CMAKE_CURRENT_LIST_DIR}/audit.c
  ${CMAKE_CURRENT_LIST_DIR}/audit_rpc.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf_policy.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf_repo.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf_rpc.c
  ${CMAKE_CURRENT_LIST_DIR}/pki.c ${CMAKE_CURRENT_LIST_DIR}/pki_policy.c
  ${CMAKE_CURRENT_LIST_DIR}/pki_sign.c ${CMAKE_CURRENT_LIST_DIR}/pki_x509.c)
target_include_directories(qs_signer PUBLIC ${CMAKE_CURRENT_LIST_DIR})
if(QS_FAULT_INJECTION)
  # Arms the fault points (signer/fault.h) in qsignd itself: never for a
  # build that is deployed. Tests use qsignd-fault and need no option.
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/fault.c PROPERTIES
                              COMPILE_DEFINITIONS QS_FAULT_INJECTION)
endif()
target_link_libraries(qs_signer PUBLIC qs_proto qs_hsm PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::LIBPQ
                      PkgConfig::CRYPTO PkgConfig::SECCOMP nng::nng Threads::Threads)

add_executable(qsignd ${CMAKE_CURRENT_LIST_DIR}/qsignd.c)
target_link_libraries(qsignd PRIVATE qs_signer PkgConfig::SYSTEMD)
