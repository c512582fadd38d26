# clients/: the client library (qsclient) and the qsign CLI built on it.
# Depends on proto/ (qs_proto, qs_err) and hsm/ (qs_hsm) only, never on
# signer/.
add_library(qsclient STATIC qsclient.c identity.c qsc_audit.c)
target_include_directories(qsclient PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(qsclient PUBLIC qs_proto qs_hsm nng::nng PRIVATE PkgConfig::CRYPTO PkgConfig::JANSSON)

add_executable(qsign qsign.c qsign_request.c qsign_audit.c qsign_tuf.c qsign_ca.c qsign_ops.c)
target_link_libraries(qsign PRIVATE qsclient PkgConfig::JANSSON PkgConfig::CRYPTO)

# pkg-config file for C programs of the build farm that link the library.
include(GNUInstallDirs)
# A sanitizer build's archives are instrumented: whoever links them needs
# the sanitizer runtimes too, so the .pc says so (empty in a normal build).
set(QS_PC_SANITIZE "")
if(QS_SANITIZE)
  set(QS_PC_SANITIZE "-fsanitize=address,undefined")
endif()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/qsclient.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/qsclient.pc @ONLY)

# The library is static, so the archives it needs travel with it.
install(TARGETS qsclient qs_proto qs_err qs_hsm
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
# nng as we build it (ops/nng/: Debian's 1.5.2 with our fix), under its own
# name so that it never shadows the system's libnng.
install(FILES ${QS_NNG_PREFIX}/lib/libnng.a DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RENAME libqs_nng.a)
install(TARGETS qsign RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/qsclient.h
              ${CMAKE_CURRENT_SOURCE_DIR}/qsc_audit.h
              ${CMAKE_SOURCE_DIR}/proto/qs_err.h
              ${CMAKE_SOURCE_DIR}/proto/qs_limits.h
              ${CMAKE_SOURCE_DIR}/proto/wire.h
              ${CMAKE_BINARY_DIR}/proto/proto/qsign.pb-c.h
              ${CMAKE_BINARY_DIR}/proto/proto/audit.pb-c.h
              ${CMAKE_BINARY_DIR}/proto/proto/pki.pb-c.h
              ${CMAKE_BINARY_DIR}/proto/proto/tuf.pb-c.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/qsclient)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/qsclient.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
