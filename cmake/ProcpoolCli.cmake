# ---------------------------------------------------------------------------
# The `procpool` command (tools/): a GNU-parallel-class job runner built on
# the public API only. The target is procpool_cli (the library owns the name
# procpool); the program is called procpool. Installed, it finds
# libprocpool.so.0 through a run path relative to itself, so it starts from
# any prefix without LD_LIBRARY_PATH.
# ---------------------------------------------------------------------------
if(PROCPOOL_CLI)
  add_executable(procpool_cli
    "${PROJECT_SOURCE_DIR}/tools/procpool.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_args.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_job.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_out.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_pipe.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_input.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_perl.c"
    "${PROJECT_SOURCE_DIR}/tools/cli_run.c")
  file(RELATIVE_PATH _pp_bin_to_lib "${CMAKE_INSTALL_FULL_BINDIR}" "${CMAKE_INSTALL_FULL_LIBDIR}")
  set_target_properties(procpool_cli PROPERTIES
    OUTPUT_NAME procpool
    INSTALL_RPATH "$ORIGIN/${_pp_bin_to_lib}")
  target_link_libraries(procpool_cli PRIVATE procpool Threads::Threads)
  if(PROCPOOL_LIBM)
    target_link_libraries(procpool_cli PRIVATE m)
  endif()
  if(PROCPOOL_INSTALL)
    install(TARGETS procpool_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
    install(FILES "${PROJECT_SOURCE_DIR}/tools/procpool.1"
      DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT cli)
  endif()
  if(_pp_tests_on)
    # a shim that refuses the command's memfd, to test the path without it
    add_library(cli_refuse MODULE "${PROJECT_SOURCE_DIR}/tests/shim/cli_refuse.c")
    add_test(NAME test_cli
      COMMAND sh "${PROJECT_SOURCE_DIR}/tests/cli_test.sh" $<TARGET_FILE:procpool_cli>
              $<TARGET_FILE:cli_refuse>)
    set_tests_properties(test_cli PROPERTIES TIMEOUT 900) # GNU parallel starts slowly
  endif()
  if(TARGET bench_cli)
    add_dependencies(bench_cli procpool_cli)
    target_compile_definitions(bench_cli PRIVATE
      "PROCPOOL_CLI_PATH=\"$<TARGET_FILE:procpool_cli>\"")
  endif()
endif()

# ---------------------------------------------------------------------------
# libFuzzer harness for the `procpool` command's option and replacement-string
# parser (tools/fuzz_cli.c; clang only). .ci/run runs it for 60 seconds:
#   CC=clang cmake -S . -B build-fuzz -DPROCPOOL_FUZZ=ON
#   cmake --build build-fuzz --target fuzz_cli
#   build-fuzz/fuzz_cli -max_total_time=60 tools/fuzz_corpus
# ---------------------------------------------------------------------------
if(PROCPOOL_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(_pp_fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
                       -fno-omit-frame-pointer)
    add_executable(fuzz_cli "${PROJECT_SOURCE_DIR}/tools/fuzz_cli.c"
                            "${PROJECT_SOURCE_DIR}/tools/cli_args.c")
    target_compile_definitions(fuzz_cli PRIVATE PROCPOOL_FUZZ_HARNESS)
    target_compile_options(fuzz_cli PRIVATE ${_pp_fuzz_flags})
    target_link_options(fuzz_cli PRIVATE ${_pp_fuzz_flags})
    target_link_libraries(fuzz_cli PRIVATE procpool_static Threads::Threads)
    if(PROCPOOL_LIBM)
      target_link_libraries(fuzz_cli PRIVATE m)
    endif()
  else()
    message(WARNING "procpool: PROCPOOL_FUZZ needs clang (libFuzzer); fuzz_cli not built")
  endif()
endif()
