# ---------------------------------------------------------------------------
# Tests (cmocka, one executable per tests/test_*.c, linked statically so
# they can reach internal pp__* functions and include headers from src/)
# ---------------------------------------------------------------------------
set(_pp_tests_on OFF)
if(PROCPOOL_TESTS AND NOT PROCPOOL_TESTS STREQUAL "AUTO")
  set(_pp_tests_required ON)
else()
  set(_pp_tests_required OFF)
endif()
if(PROCPOOL_TESTS STREQUAL "AUTO" OR _pp_tests_required)

  set(_pp_cmocka_how "")
  find_package(cmocka CONFIG QUIET)
  if(TARGET cmocka::cmocka)
    set(_pp_cmocka_how "CMake config (cmocka::cmocka)")
    set(PROCPOOL_CMOCKA cmocka::cmocka)
  elseif(TARGET cmocka)
    set(_pp_cmocka_how "CMake config (cmocka)")
    set(PROCPOOL_CMOCKA cmocka)
  elseif(cmocka_FOUND AND CMOCKA_LIBRARIES)
    set(_pp_cmocka_how "CMake config (CMOCKA_LIBRARIES)")
    add_library(procpool_cmocka INTERFACE)
    target_link_libraries(procpool_cmocka INTERFACE ${CMOCKA_LIBRARIES})
    if(CMOCKA_INCLUDE_DIR)
      target_include_directories(procpool_cmocka INTERFACE ${CMOCKA_INCLUDE_DIR})
    endif()
    set(PROCPOOL_CMOCKA procpool_cmocka)
  else()
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
    endif()
    if(CMOCKA_FOUND)
      set(_pp_cmocka_how "pkg-config")
      set(PROCPOOL_CMOCKA PkgConfig::CMOCKA)
    else()
      find_path(PROCPOOL_CMOCKA_INCLUDE cmocka.h)
      find_library(PROCPOOL_CMOCKA_LIBRARY cmocka)
      if(PROCPOOL_CMOCKA_INCLUDE AND PROCPOOL_CMOCKA_LIBRARY)
        set(_pp_cmocka_how "find_library")
        add_library(procpool_cmocka INTERFACE)
        target_link_libraries(procpool_cmocka INTERFACE "${PROCPOOL_CMOCKA_LIBRARY}")
        target_include_directories(procpool_cmocka INTERFACE "${PROCPOOL_CMOCKA_INCLUDE}")
        set(PROCPOOL_CMOCKA procpool_cmocka)
      endif()
    endif()
  endif()

  if(NOT _pp_cmocka_how AND _pp_tests_required)
    message(FATAL_ERROR
      "procpool: the tests need cmocka, which was not found.\n"
      "Install it with:   apt-get install -y libcmocka-dev   (as root, or with sudo)\n"
      "or run `make test`, which installs it when run as root,\n"
      "or configure with -DPROCPOOL_TESTS=AUTO (skip them without cmocka) or OFF.")
  elseif(NOT _pp_cmocka_how)
    message(STATUS "procpool: tests skipped: cmocka not found (`make test` installs it)")
  else()
    set(_pp_tests_on ON)
    message(STATUS "procpool: cmocka found via ${_pp_cmocka_how}")
  endif()
endif()

if(_pp_tests_on)
  enable_testing()
  file(GLOB PROCPOOL_TEST_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/test_*.c")
  list(SORT PROCPOOL_TEST_SOURCES)
  # test_trace parses the trace files with jansson (`make test` installs
  # libjansson-dev); without it that test is left out, said so.
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(PP_JANSSON QUIET IMPORTED_TARGET jansson)
  endif()
  if(NOT PP_JANSSON_FOUND)
    list(REMOVE_ITEM PROCPOOL_TEST_SOURCES "${PROJECT_SOURCE_DIR}/tests/test_trace.c")
    message(STATUS "procpool: test_trace left out: jansson not found (libjansson-dev)")
  endif()
  # Any other tests/*.c (shared helpers) go into one helper library that
  # every test links.
  file(GLOB PROCPOOL_TEST_HELPERS CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/*.c")
  list(REMOVE_ITEM PROCPOOL_TEST_HELPERS ${PROCPOOL_TEST_SOURCES})
  if(PROCPOOL_TEST_HELPERS)
    add_library(procpool_testutil STATIC ${PROCPOOL_TEST_HELPERS})
    target_include_directories(procpool_testutil PUBLIC "${PROJECT_SOURCE_DIR}/src"
                                                        "${PROJECT_SOURCE_DIR}/tests")
    target_link_libraries(procpool_testutil PUBLIC procpool_static ${PROCPOOL_CMOCKA}
                                                   Threads::Threads)
  endif()
  foreach(_src IN LISTS PROCPOOL_TEST_SOURCES)
    get_filename_component(_name "${_src}" NAME_WE)
    procpool_program(${_name} "${_src}" procpool_static)
    target_link_libraries(${_name} PRIVATE ${PROCPOOL_CMOCKA})
    if(TARGET procpool_testutil)
      target_link_libraries(${_name} PRIVATE procpool_testutil)
    endif()
    target_include_directories(${_name} PRIVATE "${PROJECT_SOURCE_DIR}/src"
                                                "${PROJECT_SOURCE_DIR}/tests")
    if(_name STREQUAL "test_trace")
      target_link_libraries(${_name} PRIVATE PkgConfig::PP_JANSSON)
    endif()
    add_test(NAME ${_name} COMMAND ${_name})
    set_tests_properties(${_name} PROPERTIES
      TIMEOUT 120
      ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
  endforeach()
  # about 10 million tasks (PPT_STEAL_TASKS scales them): a minute or so on
  # two busy cores, more under load
  if(TEST test_steal)
    set_tests_properties(test_steal PROPERTIES TIMEOUT 300)
  endif()

  # The MPI backend's tests run under mpirun (3 ranks: rank 0 and two
  # agents), as root too, oversubscribed on small machines.
  if(PROCPOOL_HAVE_MPI)
    set(_pp_mpi_env
      "PROCPOOL_BACKEND=mpi"
      "CMOCKA_MESSAGE_OUTPUT=stdout"
      "OMPI_ALLOW_RUN_AS_ROOT=1"
      "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
      "OMPI_MCA_rmaps_base_oversubscribe=1"
      "OMPI_MCA_pml=ob1"
      "OMPI_MCA_btl=self,vader"
      "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/tsan.supp"
      "OMPI_MCA_hwloc_base_binding_policy=none"
      "OMPI_MCA_mca_base_component_disable_dlclose=1"
      "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0")
    file(GLOB _pp_mpi_tests CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/mpi/test_*.c")
    foreach(_src IN LISTS _pp_mpi_tests)
      get_filename_component(_name "${_src}" NAME_WE)
      # the backend linked in (procpool_mpi_static): the static way
      procpool_program(${_name} "${_src}" procpool_static)
      target_link_libraries(${_name} PRIVATE procpool_mpi_static ${PROCPOOL_CMOCKA})
      target_include_directories(${_name} PRIVATE "${PROJECT_SOURCE_DIR}/src"
                                                  "${PROJECT_SOURCE_DIR}/tests")
      add_test(NAME ${_name}
        COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 3 $<TARGET_FILE:${_name}>)
      set_tests_properties(${_name} PROPERTIES TIMEOUT 300 ENVIRONMENT "${_pp_mpi_env}")
      # and alone, without mpirun: MPI pools say there are no agents
      add_test(NAME ${_name}_alone COMMAND ${_name})
      set_tests_properties(${_name}_alone PROPERTIES TIMEOUT 60
        ENVIRONMENT "PROCPOOL_BACKEND=mpi;CMOCKA_MESSAGE_OUTPUT=stdout")
    endforeach()
    # the shared library, which loads libprocpool_mpi.so.0 from beside itself
    procpool_program(mpi_netns_prog "${PROJECT_SOURCE_DIR}/tests/mpi/netns_prog.c" procpool)
    add_dependencies(mpi_netns_prog procpool_mpi)
    add_test(NAME test_mpi_netns
      COMMAND sh "${PROJECT_SOURCE_DIR}/tests/mpi/netns.sh" $<TARGET_FILE:mpi_netns_prog>)
    set_tests_properties(test_mpi_netns PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
    # loading: found beside libprocpool.so; a missing or mismatched backend is
    # a message and exit 1 in every rank; a local program never maps libmpi
    procpool_program(mpi_loading_prog "${PROJECT_SOURCE_DIR}/tests/mpi/loading_prog.c" procpool)
    add_dependencies(mpi_loading_prog procpool_mpi)
    add_test(NAME test_mpi_loading
      COMMAND sh "${PROJECT_SOURCE_DIR}/tests/mpi/loading.sh" ${MPIEXEC_EXECUTABLE}
              $<TARGET_FILE:mpi_loading_prog> $<TARGET_FILE:procpool_mpi>)
    set_tests_properties(test_mpi_loading PROPERTIES TIMEOUT 120 ENVIRONMENT "${_pp_mpi_env}")
  endif()
  include(cmake/ProcpoolFaultSweep.cmake)
  if(EXISTS "${PROJECT_SOURCE_DIR}/tests/man_check.sh")
    add_test(NAME test_man
      COMMAND sh "${PROJECT_SOURCE_DIR}/tests/man_check.sh" "${PROJECT_SOURCE_DIR}/man"
              "${PROJECT_SOURCE_DIR}/include/procpool.h" $<TARGET_FILE:procpool>)
  endif()
endif()

