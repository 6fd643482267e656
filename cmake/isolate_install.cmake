# Installs the headers and an exported isolateConfig.cmake so that
# find_package(isolate CONFIG) works after `cmake --install`.
install(TARGETS isolate EXPORT isolateTargets)
install(DIRECTORY include/isolate DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(ISOLATE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/isolate)
install(EXPORT isolateTargets NAMESPACE isolate:: DESTINATION ${ISOLATE_CMAKE_DIR})
configure_package_config_file(cmake/isolateConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/isolateConfig.cmake INSTALL_DESTINATION ${ISOLATE_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/isolateConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/isolateConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/isolateConfigVersion.cmake
  cmake/Findisolate_asio.cmake
  cmake/Findisolate_seccomp.cmake
  cmake/isolate_plugin.cmake
  DESTINATION ${ISOLATE_CMAKE_DIR})
