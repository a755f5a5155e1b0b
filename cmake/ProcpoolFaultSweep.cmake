# ---------------------------------------------------------------------------
# The fault-injection sweep (tests/fi/): procpool_fi is the library built
# with every system call and allocation behind a wrapper that can fail it
# (src/fault_inject.h, forced into each source); fi_prog runs programs on
# it and judges how they end; fi_driver fails each call site in turn.
#   build/fi_driver build/fi_prog                 the whole sweep (long)
#   build/fi_driver --quick --budget 300 build/fi_prog   the CI slice
# ctest runs a short slice (test_fault_sweep); .ci/run a longer one.
# ---------------------------------------------------------------------------
add_library(procpool_fi_objects OBJECT ${PROCPOOL_SOURCES})
target_compile_definitions(procpool_fi_objects PRIVATE PP_BUILDING_LIBRARY
  "PP_INSTALL_LIBDIR=\"${CMAKE_INSTALL_FULL_LIBDIR}\"")
target_compile_options(procpool_fi_objects PRIVATE
  -include "${PROJECT_SOURCE_DIR}/src/fault_inject.h")
target_include_directories(procpool_fi_objects
  PUBLIC  "${PROJECT_SOURCE_DIR}/include"
  PRIVATE "${PROJECT_SOURCE_DIR}/src")
target_link_libraries(procpool_fi_objects PUBLIC Threads::Threads)

add_library(procpool_fi STATIC $<TARGET_OBJECTS:procpool_fi_objects>
  "${PROJECT_SOURCE_DIR}/src/fault_inject.c")
target_include_directories(procpool_fi PUBLIC "${PROJECT_SOURCE_DIR}/include")
target_link_libraries(procpool_fi PUBLIC Threads::Threads)
if(PROCPOOL_LIBM)
  target_link_libraries(procpool_fi PRIVATE m)
endif()
if(CMAKE_DL_LIBS)
  target_link_libraries(procpool_fi PRIVATE ${CMAKE_DL_LIBS})
endif()

procpool_program(fi_prog "${PROJECT_SOURCE_DIR}/tests/fi/fi_prog.c" procpool_fi)
target_include_directories(fi_prog PRIVATE "${PROJECT_SOURCE_DIR}/tests")
add_executable(fi_driver "${PROJECT_SOURCE_DIR}/tests/fi/fi_driver.c")

add_test(NAME test_fault_sweep
  COMMAND fi_driver --quick --budget 150 --report fault_sweep_sites.txt
          $<TARGET_FILE:fi_prog> create:fork apply:fork imap_crash:fork terminate:forkserver
          burst:spawn)
set_tests_properties(test_fault_sweep PROPERTIES TIMEOUT 280)

# The MPI backend, its own calls behind the same wrappers (a copy of
# fault_inject.c inside it; the program's and the backend's copies agree on
# which process is the program through PP_FI_ROOT_PID). fi_driver's mpi
# cases load it through PROCPOOL_MPI_LIBRARY.
if(PROCPOOL_HAVE_MPI)
  add_library(procpool_mpi_fi_objects OBJECT ${PROCPOOL_MPI_SOURCES})
  set_target_properties(procpool_mpi_fi_objects PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden)
  target_compile_options(procpool_mpi_fi_objects PRIVATE
    -include "${PROJECT_SOURCE_DIR}/src/fault_inject.h")
  target_compile_definitions(procpool_mpi_fi_objects PRIVATE PP_BUILDING_LIBRARY)
  target_include_directories(procpool_mpi_fi_objects PRIVATE
    "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(procpool_mpi_fi_objects PRIVATE MPI::MPI_C Threads::Threads)
  add_library(procpool_mpi_fi SHARED $<TARGET_OBJECTS:procpool_mpi_fi_objects>
    "${PROJECT_SOURCE_DIR}/src/fault_inject.c")
  set_target_properties(procpool_mpi_fi PROPERTIES C_VISIBILITY_PRESET hidden)
  target_link_libraries(procpool_mpi_fi PRIVATE MPI::MPI_C Threads::Threads)
  add_dependencies(fi_prog procpool_mpi_fi)
endif()
