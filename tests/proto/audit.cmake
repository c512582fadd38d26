# Unit tests of the audit log's shared math: Merkle trees and proofs
# (against the RFC 6962 vectors), signed notes and checkpoints, and an
# independent check of our checkpoint signatures with the openssl CLI.
add_executable(merkle_test merkle_test.c)
target_link_libraries(merkle_test PRIVATE qs_proto PkgConfig::JANSSON)
qs_add_test(proto_merkle COMMAND merkle_test
            ${CMAKE_CURRENT_SOURCE_DIR}/testdata/rfc6962-merkle-vectors.json
            LABELS unit proto TIMEOUT 120)

add_executable(note_test note_test.c)
target_link_libraries(note_test PRIVATE qs_proto)
qs_add_test(proto_note COMMAND note_test LABELS unit proto TIMEOUT 60)

add_executable(note_tool note_tool.c)
target_link_libraries(note_tool PRIVATE qs_proto)
qs_add_test(proto_note_openssl
            COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/note_openssl.sh $<TARGET_FILE:note_tool>
            LABELS unit proto interop TIMEOUT 60)
