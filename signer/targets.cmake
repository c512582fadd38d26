# The daemon's modules are one library (so tests can link them) plus a thin
# main().
add_library(qs_signer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/daemon/log.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/fault.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/config.c
  ${CMAKE_CURRENT_LIST_DIR}/quorum/policy.c
  ${CMAKE_CURRENT_LIST_DIR}/store/store.c
  ${CMAKE_CURRENT_LIST_DIR}/store/store_sqlite.c
  ${CMAKE_CURRENT_LIST_DIR}/store/store_pg.c
  ${CMAKE_CURRENT_LIST_DIR}/store/sigindex.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/keyring.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/privsep.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/privsep_frame.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/privsep_launcher.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/privsep_helper.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/privsep_wire.c
  ${CMAKE_CURRENT_LIST_DIR}/keys/privsep_guard.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc/ratelimit.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc/server.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/probe.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc/auth.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc/sign_rpc.c
  ${CMAKE_CURRENT_LIST_DIR}/quorum/requests.c
  ${CMAKE_CURRENT_LIST_DIR}/quorum/approval.c
  ${CMAKE_CURRENT_LIST_DIR}/quorum/reqkinds.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc/rpc_table.c
  ${CMAKE_CURRENT_LIST_DIR}/quorum/policy_ext.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/harden.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/backup.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/migrate.c
  ${CMAKE_CURRENT_LIST_DIR}/daemon/maint.c
  ${CMAKE_CURRENT_LIST_DIR}/audit/tlog.c
  ${CMAKE_CURRENT_LIST_DIR}/audit/audit.c
  ${CMAKE_CURRENT_LIST_DIR}/audit/audit_rpc.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_policy.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_repo.c ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_build.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_publish.c ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_materialise.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_external.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_root.c
  ${CMAKE_CURRENT_LIST_DIR}/tuf/tuf_rpc.c
  ${CMAKE_CURRENT_LIST_DIR}/pki/pki.c ${CMAKE_CURRENT_LIST_DIR}/pki/pki_policy.c
  ${CMAKE_CURRENT_LIST_DIR}/pki/pki_sign.c ${CMAKE_CURRENT_LIST_DIR}/pki/pki_x509.c)
target_include_directories(qs_signer PUBLIC ${CMAKE_CURRENT_LIST_DIR}/audit ${CMAKE_CURRENT_LIST_DIR}/daemon ${CMAKE_CURRENT_LIST_DIR}/keys ${CMAKE_CURRENT_LIST_DIR}/pki ${CMAKE_CURRENT_LIST_DIR}/quorum ${CMAKE_CURRENT_LIST_DIR}/rpc ${CMAKE_CURRENT_LIST_DIR}/store ${CMAKE_CURRENT_LIST_DIR}/tuf)
if(QS_FAULT_INJECTION)
  # Arms the fault points (signer/daemon/fault.h) in qsignd itself: never for a
  # build that is deployed. Tests use qsignd-fault and need no option.
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/daemon/fault.c PROPERTIES
                              COMPILE_DEFINITIONS QS_FAULT_INJECTION)
endif()
target_link_libraries(qs_signer PUBLIC qs_proto qs_fileio qs_hsm PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::LIBPQ
                      PkgConfig::CRYPTO PkgConfig::SECCOMP nng::nng Threads::Threads)

add_executable(qsignd ${CMAKE_CURRENT_LIST_DIR}/daemon/qsignd.c)
target_link_libraries(qsignd PRIVATE qs_signer PkgConfig::SYSTEMD)
