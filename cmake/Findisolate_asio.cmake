# Standalone Asio (Debian: libasio-dev) ships no CMake package, so isolate
# provides the target itself: isolate::asio, an INTERFACE IMPORTED target
# with Asio's include directory and ASIO_STANDALONE. Set ISOLATE_ASIO_INCLUDE_DIR
# to use a copy of Asio that is not on the default include path.
# Sets isolate_asio_FOUND and isolate_asio_VERSION.
find_path(ISOLATE_ASIO_INCLUDE_DIR NAMES asio.hpp DOC "Directory holding standalone Asio's asio.hpp")

# asio/version.hpp: #define ASIO_VERSION 102201 // 1.22.1
if(ISOLATE_ASIO_INCLUDE_DIR AND EXISTS "${ISOLATE_ASIO_INCLUDE_DIR}/asio/version.hpp")
  file(STRINGS "${ISOLATE_ASIO_INCLUDE_DIR}/asio/version.hpp" isolate_asio_version_line
    REGEX "^#define ASIO_VERSION[ \t]+[0-9]+")
  if(isolate_asio_version_line MATCHES "ASIO_VERSION[ \t]+([0-9]+)")
    math(EXPR isolate_asio_major "${CMAKE_MATCH_1} / 100000")
    math(EXPR isolate_asio_minor "${CMAKE_MATCH_1} / 100 % 1000")
    math(EXPR isolate_asio_patch "${CMAKE_MATCH_1} % 100")
    set(isolate_asio_VERSION "${isolate_asio_major}.${isolate_asio_minor}.${isolate_asio_patch}")
  endif()
  unset(isolate_asio_version_line)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(isolate_asio
  REQUIRED_VARS ISOLATE_ASIO_INCLUDE_DIR
  VERSION_VAR isolate_asio_VERSION)
if(isolate_asio_FOUND AND NOT TARGET isolate::asio)
  add_library(isolate::asio INTERFACE IMPORTED)
  set_target_properties(isolate::asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${ISOLATE_ASIO_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_NO_DEPRECATED")
endif()
mark_as_advanced(ISOLATE_ASIO_INCLUDE_DIR)
