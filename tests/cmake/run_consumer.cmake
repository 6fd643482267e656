# Builds and runs a consumer project of isolate; run by CTest (tests/cmake).
#   cmake -DMODE=find_package|add_subdirectory -DISOLATE_SOURCE_DIR=<isolate>
#         -DCONSUMER_DIR=<consumer project> -DWORK_DIR=<scratch dir>
#         -DCXX_COMPILER=<c++> -DGENERATOR=<generator> [-DMAKE_PROGRAM=<make>]
#         [-DBUILD_TYPE=<config>] -P run_consumer.cmake
# find_package: configure, build and install isolate into WORK_DIR/prefix,
# then build the consumer against that prefix. add_subdirectory: build the
# consumer with isolate's source tree added to it. Either way, run the result.
cmake_minimum_required(VERSION 3.21)

foreach(var IN ITEMS MODE ISOLATE_SOURCE_DIR CONSUMER_DIR WORK_DIR CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

# Same toolchain as the outer build; no compile flags, so a sanitizer or
# warning flag of the outer build cannot mask what a plain consumer sees.
set(toolchain_args "-G${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
if(MAKE_PROGRAM)
  list(APPEND toolchain_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(BUILD_TYPE)
  list(APPEND toolchain_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
  set(config_args --config ${BUILD_TYPE})
endif()

function(run_step name)
  message(STATUS "[${MODE}] ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "[${MODE}] ${name} failed (${result}): ${command}")
  endif()
endfunction()

set(consumer_build "${WORK_DIR}/consumer")
if(MODE STREQUAL "find_package")
  set(isolate_build "${WORK_DIR}/isolate")
  set(prefix "${WORK_DIR}/prefix")
  # A fresh prefix each time: a header left over from an earlier install must
  # not hide one that the install rules forgot.
  file(REMOVE_RECURSE "${prefix}")
  run_step("configure isolate" ${CMAKE_COMMAND} -S "${ISOLATE_SOURCE_DIR}" -B "${isolate_build}" ${toolchain_args}
    "-DCMAKE_INSTALL_PREFIX=${prefix}"
    -DISOLATE_BUILD_TESTS=OFF -DISOLATE_BUILD_EXAMPLES=OFF -DISOLATE_BUILD_BENCHMARKS=OFF)
  run_step("build isolate" ${CMAKE_COMMAND} --build "${isolate_build}" ${config_args})
  run_step("install isolate" ${CMAKE_COMMAND} --install "${isolate_build}" ${config_args})
  set(consumer_args "-DCMAKE_PREFIX_PATH=${prefix}" "-DISOLATE_EXPECTED_PREFIX=${prefix}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
else()
  set(consumer_args "-DISOLATE_SOURCE_DIR=${ISOLATE_SOURCE_DIR}")
endif()

run_step("configure consumer" ${CMAKE_COMMAND} -S "${CONSUMER_DIR}" -B "${consumer_build}" ${toolchain_args} ${consumer_args})
run_step("build consumer" ${CMAKE_COMMAND} --build "${consumer_build}" ${config_args})

set(app "${consumer_build}/app")
if(BUILD_TYPE AND NOT EXISTS "${app}" AND EXISTS "${consumer_build}/${BUILD_TYPE}/app")
  set(app "${consumer_build}/${BUILD_TYPE}/app")  # multi-config generators
endif()
message(STATUS "[${MODE}] run consumer")
execute_process(COMMAND "${app}" RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "[${MODE}] consumer exited with ${result}")
endif()
if(NOT output MATCHES "isolate consumer: [^\n]+")
  message(FATAL_ERROR "[${MODE}] consumer printed no error message")
endif()
