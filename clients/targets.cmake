# clients/: the client library (qsclient) and the qsign CLI built on it.
# Depends on proto/ (qs_proto, qs_err) and hsm/ (qs_hsm) only, never on
# signer/; p11-kit for its PKCS#11 URI parser (identity.c).
add_library(qsclient STATIC qsclient.c identity.c qsc_audit.c)
# The library's API is qsclient.h, identity.h (principal keys) and
# qsc_audit.h (the audit log verifier); qsign's own header (qsign_cli.h)
# stays inside clients/.
qs_export_headers(qsclient qsclient.h identity.h qsc_audit.h)
target_link_libraries(qsclient PUBLIC qs_proto qs_hsm nng::nng Threads::Threads PRIVATE PkgConfig::CRYPTO PkgConfig::P11KIT
                      PkgConfig::JANSSON)

add_executable(qsign qsign.c qsign_request.c qsign_audit.c qsign_tuf.c qsign_ca.c qsign_ops.c
                     qsign_keys.c qsign_complete.c qsign_opts.c)
target_include_directories(qsign PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(qsign PRIVATE qsclient qs_fileio PkgConfig::JANSSON PkgConfig::CRYPTO)

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

# libqsign-pkcs11.so: a PKCS#11 module whose every signature is a qsignd
# Sign (p11.h). Built to build/lib, installed where Debian's multiarch
# PKCS#11 modules live, with a p11-kit module file (off for p11-kit-proxy).
# Linked into a shared object: the libraries it takes in are built as PIC
# (for the executables the cost is nil on x86-64).
set_target_properties(qsclient qs_proto qs_err qs_hsm PROPERTIES POSITION_INDEPENDENT_CODE ON)
# The parts that read what applications, qsignd and the configuration hand
# the module: a library of their own, so that tests/fuzz reaches them.
add_library(qs_p11 STATIC p11_objects.c p11_mech.c p11_config.c)
qs_export_headers(qs_p11 p11.h)
set_target_properties(qs_p11 PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(qs_p11 PUBLIC qsclient PkgConfig::P11KIT PkgConfig::JANSSON
                      PkgConfig::CRYPTO)
add_library(qsign-pkcs11 MODULE p11_module.c)
set_target_properties(qsign-pkcs11 PROPERTIES
  PREFIX "lib"
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib
  C_VISIBILITY_PRESET hidden)
target_link_libraries(qsign-pkcs11 PRIVATE qs_p11 Threads::Threads ${CMAKE_DL_LIBS})
# Only C_GetFunctionList leaves the module: the static nng, protobuf and
# qsclient symbols must not clash with the application's own.
target_link_options(qsign-pkcs11 PRIVATE
  -Wl,--version-script=${CMAKE_CURRENT_SOURCE_DIR}/p11_module.map -Wl,-z,defs
  # nng keeps threads of its own (timers, resolver) after the last socket
  # closes: the code they run must stay mapped when an application
  # dlclose()s the module after C_Finalize.
  -Wl,-z,nodelete)
set_property(TARGET qsign-pkcs11 APPEND PROPERTY LINK_DEPENDS
             ${CMAKE_CURRENT_SOURCE_DIR}/p11_module.map)
# Where p11-kit looks for modules and their files (Debian: the multiarch
# lib/<triplet>/pkcs11 and share/p11-kit/modules), relative to the prefix so
# that a scratch or package install follows it.
pkg_get_variable(QS_P11_MODULE_PATH p11-kit-1 p11_module_path)
pkg_get_variable(QS_P11_MODULE_CONFIGS p11-kit-1 p11_module_configs)
string(REGEX REPLACE "^/usr/" "" QS_P11_MODULE_DIR "${QS_P11_MODULE_PATH}")
string(REGEX REPLACE "^/usr/" "" QS_P11_CONFIG_DIR "${QS_P11_MODULE_CONFIGS}")
if(QS_P11_MODULE_DIR STREQUAL "" OR IS_ABSOLUTE "${QS_P11_MODULE_DIR}")
  set(QS_P11_MODULE_DIR ${CMAKE_INSTALL_LIBDIR}/pkcs11)
endif()
if(QS_P11_CONFIG_DIR STREQUAL "" OR IS_ABSOLUTE "${QS_P11_CONFIG_DIR}")
  set(QS_P11_CONFIG_DIR ${CMAKE_INSTALL_DATADIR}/p11-kit/modules)
endif()
install(TARGETS qsign-pkcs11 LIBRARY DESTINATION ${QS_P11_MODULE_DIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/qsign-pkcs11.module DESTINATION ${QS_P11_CONFIG_DIR})
