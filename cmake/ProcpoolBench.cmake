# ---------------------------------------------------------------------------
# Benchmarks (linked to the shared library) and the `bench` target, run from
# the source dir so they can find bench/*.py. They also write the figures
# that bench/plots.gp draws as CSV into <build>/bench (PROCPOOL_BENCH_CSV_DIR),
# which the target empties first and draws as SVG last (bench_plots alone:
# `make plots`).
#
# The same file as a script, for those two steps, which must never fail the
# target (gnuplot may be missing, a CSV may be missing or bad):
#   cmake -DPP_BENCH_STEP=clean|plot -DPP_BENCH_DIR=<build>/bench
#         [-DPP_BENCH_PLOTS=bench/plots.gp] -P cmake/ProcpoolBench.cmake
# ---------------------------------------------------------------------------
if(CMAKE_SCRIPT_MODE_FILE)
  if(PP_BENCH_STEP STREQUAL "clean")
    # the figures of the run before must not be drawn as this run's
    file(MAKE_DIRECTORY "${PP_BENCH_DIR}")
    file(GLOB _old "${PP_BENCH_DIR}/*.csv" "${PP_BENCH_DIR}/*.svg")
    if(_old)
      file(REMOVE ${_old})
    endif()
  elseif(PP_BENCH_STEP STREQUAL "plot")
    find_program(PP_GNUPLOT gnuplot)
    file(GLOB _csv "${PP_BENCH_DIR}/*.csv")
    if(NOT PP_GNUPLOT)
      message(STATUS "bench plots skipped: gnuplot not found (apt-get install gnuplot-nox)")
    elseif(NOT _csv)
      message(STATUS "bench plots skipped: no CSV in ${PP_BENCH_DIR} (run make bench first)")
    else()
      execute_process(COMMAND "${PP_GNUPLOT}" -e "dir='${PP_BENCH_DIR}'" "${PP_BENCH_PLOTS}"
                      RESULT_VARIABLE _rc)
      file(GLOB _svg "${PP_BENCH_DIR}/*.svg")
      list(LENGTH _svg _n)
      if(NOT _rc EQUAL 0)
        message(STATUS "bench plots: gnuplot failed (${_rc}); ${_n} SVG in ${PP_BENCH_DIR}")
      else()
        message(STATUS "bench plots: ${_n} SVG in ${PP_BENCH_DIR} (make bench-docs copies them "
                       "to docs/bench)")
      endif()
    endif()
  else()
    message(FATAL_ERROR "ProcpoolBench.cmake: PP_BENCH_STEP must be clean or plot")
  endif()
  return()
endif()

if(NOT PROCPOOL_BENCH)
  return()
endif()

set(_pp_bench_dir "${PROJECT_BINARY_DIR}/bench")
set(_pp_bench_step ${CMAKE_COMMAND} "-DPP_BENCH_DIR=${_pp_bench_dir}"
    "-DPP_BENCH_PLOTS=${PROJECT_SOURCE_DIR}/bench/plots.gp")

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
    COMMAND ${CMAKE_COMMAND} -E env "PROCPOOL_BENCH_CSV_DIR=${_pp_bench_dir}"
            $<TARGET_FILE:${_target}>)
endforeach()

if(TARGET bench_mpi)
  # the raw Open MPI task farm it measures against calls MPI itself
  target_link_libraries(bench_mpi PRIVATE MPI::MPI_C)
  add_dependencies(bench_mpi procpool_mpi)
  target_compile_definitions(bench_mpi PRIVATE "PROCPOOL_MPIEXEC=\"${MPIEXEC_EXECUTABLE}\"")
endif()

add_custom_target(bench
  COMMAND ${_pp_bench_step} -DPP_BENCH_STEP=clean -P "${CMAKE_CURRENT_LIST_FILE}"
  ${_pp_bench_commands}
  COMMAND ${_pp_bench_step} -DPP_BENCH_STEP=plot -P "${CMAKE_CURRENT_LIST_FILE}"
  DEPENDS ${_pp_bench_names}
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  USES_TERMINAL
  VERBATIM
  COMMENT "Running the benchmarks")

# the plots alone, from the CSVs of the last `bench` (make plots)
add_custom_target(bench_plots
  COMMAND ${_pp_bench_step} -DPP_BENCH_STEP=plot -P "${CMAKE_CURRENT_LIST_FILE}"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  VERBATIM
  COMMENT "Drawing the benchmark plots (bench/plots.gp)")
