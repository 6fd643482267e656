# Run by the tests of isolate_add_compile_fail_test (tests/CMakeLists.txt):
#   cmake -DBINARY_DIR=<build tree> -DTARGET=<object library> [-DCONFIG=<config>]
#         -DREGEX_FILE=<file holding the expected diagnostic's regex> -P expect_compile_failure.cmake
# Passes only when building TARGET fails and the compiler's output matches the
# regex: a build that fails for another reason (a typo, a missing header) fails.
cmake_minimum_required(VERSION 3.21)
file(READ "${REGEX_FILE}" regex)
set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BINARY_DIR}" --target "${TARGET}" ${config_args}
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but it must be rejected with a diagnostic matching: ${regex}")
endif()
if(NOT output MATCHES "${regex}")
  message("${output}")
  message(FATAL_ERROR "${TARGET} failed to compile, but not with a diagnostic matching: ${regex}")
endif()
message(STATUS "${TARGET} is rejected as expected")
