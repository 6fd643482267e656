# libseccomp (Debian: libseccomp-dev) ships only a pkg-config file, no CMake
# package, so isolate provides the target itself: isolate::seccomp, an IMPORTED
# library with seccomp.h's include directory. pkg-config is used as a hint when
# present; set ISOLATE_SECCOMP_INCLUDE_DIR / ISOLATE_SECCOMP_LIBRARY to use
# another copy. Sets isolate_seccomp_FOUND and isolate_seccomp_VERSION.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_ISOLATE_SECCOMP QUIET libseccomp)
endif()
find_path(ISOLATE_SECCOMP_INCLUDE_DIR NAMES seccomp.h HINTS ${PC_ISOLATE_SECCOMP_INCLUDE_DIRS}
  DOC "Directory holding libseccomp's seccomp.h")
find_library(ISOLATE_SECCOMP_LIBRARY NAMES seccomp HINTS ${PC_ISOLATE_SECCOMP_LIBRARY_DIRS}
  DOC "libseccomp library")

# The header knows its version even when pkg-config is absent.
if(ISOLATE_SECCOMP_INCLUDE_DIR AND EXISTS "${ISOLATE_SECCOMP_INCLUDE_DIR}/seccomp.h")
  file(STRINGS "${ISOLATE_SECCOMP_INCLUDE_DIR}/seccomp.h" isolate_seccomp_version_lines
    REGEX "^#define SCMP_VER_(MAJOR|MINOR|MICRO)[ \t]+[0-9]+")
  set(isolate_seccomp_VERSION "")
  foreach(part MAJOR MINOR MICRO)
    string(REGEX MATCH "SCMP_VER_${part}[ \t]+([0-9]+)" _ "${isolate_seccomp_version_lines}")
    if(CMAKE_MATCH_1 STREQUAL "")
      set(isolate_seccomp_VERSION "")
      break()
    endif()
    string(APPEND isolate_seccomp_VERSION ".${CMAKE_MATCH_1}")
  endforeach()
  string(REGEX REPLACE "^\\." "" isolate_seccomp_VERSION "${isolate_seccomp_VERSION}")
  unset(isolate_seccomp_version_lines)
endif()
if(NOT isolate_seccomp_VERSION AND PC_ISOLATE_SECCOMP_VERSION)
  set(isolate_seccomp_VERSION "${PC_ISOLATE_SECCOMP_VERSION}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(isolate_seccomp
  REQUIRED_VARS ISOLATE_SECCOMP_LIBRARY ISOLATE_SECCOMP_INCLUDE_DIR
  VERSION_VAR isolate_seccomp_VERSION)
if(isolate_seccomp_FOUND AND NOT TARGET isolate::seccomp)
  add_library(isolate::seccomp UNKNOWN IMPORTED)
  set_target_properties(isolate::seccomp PROPERTIES
    IMPORTED_LOCATION "${ISOLATE_SECCOMP_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${ISOLATE_SECCOMP_INCLUDE_DIR}")
endif()
mark_as_advanced(ISOLATE_SECCOMP_INCLUDE_DIR ISOLATE_SECCOMP_LIBRARY)
