# ---------------------------------------------------------------------------
# Benchmarks (linked to the shared library) and the `bench` target, run from
# the source dir so they can find bench/*.py.
# ---------------------------------------------------------------------------
if(NOT PROCPOOL_BENCH)
  return()
endif()

set(_pp_bench_names bench_api bench_cli bench_core bench_hol bench_map bench_shm bench_trace)
if(PROCPOOL_HAVE_MPI)
  list(APPEND _pp_bench_names bench_mpi)
endif()
set(_pp_bench_commands "")
list(APPEND _pp_bench_names bench_soak)
foreach(_target IN LISTS _pp_bench_names)
  string(REGEX REPLACE "^bench_soak$" "soak" _src "${_target}")
  procpool_program(${_target} "${PROJECT_SOURCE_DIR}/bench/${_src}.c" procpool)
  target_include_directories(${_target} PRIVATE "${PROJECT_SOURCE_DIR}/bench")
  list(APPEND _pp_bench_commands
    COMMAND ${CMAKE_COMMAND} -E echo "== ${_target}"
    COMMAND $<TARGET_FILE:${_target}>)
endforeach()

if(TARGET bench_mpi)
  # the raw Open MPI task farm it measures against calls MPI itself
  target_link_libraries(bench_mpi PRIVATE MPI::MPI_C)
  add_dependencies(bench_mpi procpool_mpi)
  target_compile_definitions(bench_mpi PRIVATE "PROCPOOL_MPIEXEC=\"${MPIEXEC_EXECUTABLE}\"")
endif()

add_custom_target(bench
  ${_pp_bench_commands}
  DEPENDS ${_pp_bench_names}
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  USES_TERMINAL
  COMMENT "Running the benchmarks")
