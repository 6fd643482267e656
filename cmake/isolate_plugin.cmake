# isolate_add_plugin(<name> SOURCES <src>... [OUTPUT_DIRECTORY <dir>])
#
# Builds a plugin: a MODULE library exporting only the entry that
# ISOLATE_EXPORT_PLUGIN defines (every other symbol hidden, so plugins never
# clash with each other or with the host), written to <dir> (default
# ${ISOLATE_PLUGIN_OUTPUT_DIRECTORY} if set, else ${CMAKE_BINARY_DIR}/plugins).
# The process transport runs the plugin in `isolate-worker`, looked for next to
# the plugin first, so each plugin directory also gets a worker program: the
# first directory's worker target is `isolate_worker`, later ones
# `isolate_worker_2`, `isolate_worker_3`...; the plugin target's property
# ISOLATE_WORKER_TARGET names its worker. The workers share one compiled object.
# Each worker also gets `isolate-init` beside it (target <worker>_init), the
# PID 1 of its sandbox.
include_guard(GLOBAL)

# The worker's one-line main, compiled once for every worker target.
function(_isolate_worker_objects out_var)
  set(target isolate_worker_main)
  if(NOT TARGET ${target})
    set(source "${CMAKE_BINARY_DIR}/isolate_worker/isolate_worker_main.cpp")
    file(CONFIGURE OUTPUT "${source}" CONTENT "#include <isolate/worker.hpp>\n\nISOLATE_WORKER_MAIN();\n" @ONLY)
    add_library(${target} OBJECT "${source}")
    target_link_libraries(${target} PUBLIC isolate::isolate)
  endif()
  set(${out_var} ${target} PARENT_SCOPE)
endfunction()

# The worker target writing `isolate-worker` into `dir`, made on first use.
function(_isolate_worker_for_directory out_var dir)
  get_property(dirs GLOBAL PROPERTY ISOLATE_WORKER_DIRECTORIES)
  list(FIND dirs "${dir}" index)
  if(index EQUAL -1)
    list(LENGTH dirs index)
    set_property(GLOBAL APPEND PROPERTY ISOLATE_WORKER_DIRECTORIES "${dir}")
  endif()
  if(index EQUAL 0)
    set(target isolate_worker)
  else()
    math(EXPR number "${index} + 1")
    set(target isolate_worker_${number})
  endif()
  if(NOT TARGET ${target})
    _isolate_worker_objects(objects)
    add_executable(${target} $<TARGET_OBJECTS:${objects}>)
    target_link_libraries(${target} PRIVATE isolate::isolate)
    set_target_properties(${target} PROPERTIES
      OUTPUT_NAME isolate-worker
      RUNTIME_OUTPUT_DIRECTORY "${dir}")
    _isolate_init_for_worker(${target} "${dir}")
  endif()
  set(${out_var} ${target} PARENT_SCOPE)
endfunction()

# `isolate-init`, PID 1 of a sandboxed worker's namespaces, written next to
# the worker `worker_target` and built with it: a small static program of
# the C library alone (isolate/detail/sandbox/init_program.hpp says why), so
# no sanitizer and nothing of isolate::isolate's link line.
function(_isolate_init_for_worker worker_target dir)
  set(target "${worker_target}_init")
  set(source "${CMAKE_BINARY_DIR}/isolate_worker/isolate_init_main.cpp")
  if(NOT EXISTS "${source}")
    file(CONFIGURE OUTPUT "${source}"
      CONTENT "#include <isolate/detail/sandbox/init_program.hpp>\n\nISOLATE_INIT_MAIN();\n" @ONLY)
  endif()
  add_executable(${target} "${source}")
  target_include_directories(${target} PRIVATE $<TARGET_PROPERTY:isolate::isolate,INTERFACE_INCLUDE_DIRECTORIES>)
  target_compile_options(${target} PRIVATE -fno-sanitize=all -fno-exceptions)
  target_link_options(${target} PRIVATE -static -fno-sanitize=all)
  set_target_properties(${target} PROPERTIES
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    OUTPUT_NAME isolate-init
    RUNTIME_OUTPUT_DIRECTORY "${dir}")
  add_dependencies(${worker_target} ${target})
endfunction()

function(isolate_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUTPUT_DIRECTORY" "SOURCES")
  if(arg_UNPARSED_ARGUMENTS OR NOT arg_SOURCES)
    message(FATAL_ERROR
      "usage: isolate_add_plugin(<name> SOURCES <source>... [OUTPUT_DIRECTORY <dir>])"
      "${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET isolate::isolate)
    message(FATAL_ERROR "isolate_add_plugin(${name}): isolate::isolate is not defined; call find_package(isolate) or add isolate's source tree first")
  endif()
  if(arg_OUTPUT_DIRECTORY)
    set(dir "${arg_OUTPUT_DIRECTORY}")
  elseif(ISOLATE_PLUGIN_OUTPUT_DIRECTORY)
    set(dir "${ISOLATE_PLUGIN_OUTPUT_DIRECTORY}")
  else()
    set(dir "${CMAKE_BINARY_DIR}/plugins")
  endif()
  get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")

  add_library(${name} MODULE ${arg_SOURCES})
  target_link_libraries(${name} PRIVATE isolate::isolate)
  # Hidden by default: the entry, marked visible by ISOLATE_EXPORT_PLUGIN, is the only export.
  set_target_properties(${name} PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY "${dir}")

  # GNU linkers: everything but the entry (and the description that
  # discovery reads) becomes local, including the default-visibility inline
  # statics of the standard library headers, whose STB_GNU_UNIQUE binding
  # would otherwise make dlclose a no-op. (Exceptions
  # still cross: the type_info of a class with default visibility, such as
  # isolate::error, is matched by name.)
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    set(script "${CMAKE_BINARY_DIR}/isolate_worker/isolate_plugin.map")
    file(WRITE "${script}.new" "{\n  global: isolate_plugin_entry; isolate_plugin_description;\n  local: *;\n};\n")
    file(COPY_FILE "${script}.new" "${script}" ONLY_IF_DIFFERENT)
    target_link_options(${name} PRIVATE "LINKER:--version-script=${script}")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS "${script}")
  endif()

  _isolate_worker_for_directory(worker "${dir}")
  # Building a plugin builds the worker that runs it out of process.
  add_dependencies(${name} ${worker})
  set_target_properties(${name} PROPERTIES ISOLATE_WORKER_TARGET ${worker})
endfunction()
