# Compiler flags shared by every anisoflow target, and a helper that declares one lib/ module.

add_library(anisoflow_compile_options INTERFACE)
target_compile_options(anisoflow_compile_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  $<$<BOOL:${ANISOFLOW_WERROR}>:-Werror>
  $<$<BOOL:${ANISOFLOW_NATIVE}>:-march=native>)
if(ANISOFLOW_SANITIZE)
  target_compile_options(anisoflow_compile_options INTERFACE
    -fsanitize=${ANISOFLOW_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(anisoflow_compile_options INTERFACE -fsanitize=${ANISOFLOW_SANITIZE})
  # GCC 12 at -O1 with the sanitizers' instrumentation gives false positives of these two flow
  # warnings (std::regex's std::function "may be used uninitialized", vector::resize's grow path
  # "exceeds maximum object size"); they stay warnings here and errors in the dev build (-O2).
  target_compile_options(anisoflow_compile_options INTERFACE
    $<$<CXX_COMPILER_ID:GNU>:-Wno-error=maybe-uninitialized>
    $<$<CXX_COMPILER_ID:GNU>:-Wno-error=stringop-overflow>)
endif()
if(ANISOFLOW_SANITIZE MATCHES "thread")
  # GCC 12 warns (-Wtsan, an error with -Werror) that TSan does not model atomic_thread_fence,
  # which Boost.Asio's std_fenced_block (gateway, metrics scrape) uses in its headers; not ours.
  target_compile_options(anisoflow_compile_options INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
endif()

# anisoflow_module(NAME SOURCES ... PUBLIC_DEPS ... PRIVATE_DEPS ...)
# Declares anisoflow_<name> with alias anisoflow::<name>, headers under lib/<name>/include.
function(anisoflow_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(anisoflow_${name} ${ARG_SOURCES})
  add_library(anisoflow::${name} ALIAS anisoflow_${name})
  target_include_directories(anisoflow_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(anisoflow_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE anisoflow_compile_options ${ARG_PRIVATE_DEPS})
endfunction()

# anisoflow_test(NAME LABEL SOURCES ... DEPS ...)
# One GoogleTest binary per module, discovered into CTest with a label (unit, integration, ...).
function(anisoflow_test name)
  cmake_parse_arguments(ARG "" "LABEL" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/support/src/log_registry_first.cpp)
  target_link_libraries(${name} PRIVATE anisoflow_compile_options anisoflow_test_support ${ARG_DEPS}
    spdlog::spdlog GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} PROPERTIES LABELS ${ARG_LABEL} DISCOVERY_TIMEOUT 60)
  # anisoflow_e2e builds every end-to-end test (and, through their add_dependencies, the binaries
  # they spawn) and nothing else: the TSan job builds only this (scripts/test-sanitizers.sh).
  if(ARG_LABEL MATCHES "^(integration|faults)$")
    if(NOT TARGET anisoflow_e2e)
      add_custom_target(anisoflow_e2e)
      cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL anisoflow_e2e_add_faults)
    endif()
    add_dependencies(anisoflow_e2e ${name})
  endif()
endfunction()

# tests/faults (label faults) declares its suite with add_test, not anisoflow_test: once everything
# is configured, every executable declared there joins anisoflow_e2e too (its add_dependencies
# bring the binaries it starts).
function(anisoflow_e2e_add_faults)
  set(dir "${PROJECT_SOURCE_DIR}/tests/faults")
  get_property(added DIRECTORY "${PROJECT_SOURCE_DIR}/tests" PROPERTY SUBDIRECTORIES)
  if(NOT dir IN_LIST added)
    return()
  endif()
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      add_dependencies(anisoflow_e2e ${target})
    endif()
  endforeach()
endfunction()
