# ---------------------------------------------------------------------------
# procpool-trace (tools/trace_read.c reads, tools/trace_svg.c draws; the
# model they share is tools/trace_model.h): draws a trace file
# (docs/tracing.md) as one self-contained SVG. It parses JSON with jansson,
# found by pkg-config (Debian: libjansson-dev); without it the program is
# left out, with a notice. It does not link the library: it only reads the
# file.
# ---------------------------------------------------------------------------
if(PROCPOOL_CLI)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(JANSSON QUIET IMPORTED_TARGET jansson)
  endif()
  if(JANSSON_FOUND)
    add_executable(procpool_trace "${PROJECT_SOURCE_DIR}/tools/trace_read.c"
      "${PROJECT_SOURCE_DIR}/tools/trace_svg.c")
    set_target_properties(procpool_trace PROPERTIES OUTPUT_NAME procpool-trace)
    target_compile_definitions(procpool_trace PRIVATE
      "PROCPOOL_TRACE_VERSION=\"${PROJECT_VERSION}\"")
    target_link_libraries(procpool_trace PRIVATE PkgConfig::JANSSON)
    if(PROCPOOL_LIBM)
      target_link_libraries(procpool_trace PRIVATE m)
    endif()
    if(PROCPOOL_INSTALL)
      install(TARGETS procpool_trace RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
      install(FILES "${PROJECT_SOURCE_DIR}/tools/procpool-trace.1"
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT cli)
    endif()
    if(_pp_tests_on)
      # exit 77: all passed but Chromium is not installed, so the picture was
      # not looked at
      add_test(NAME trace_svg
        COMMAND sh "${PROJECT_SOURCE_DIR}/tests/trace_svg_test.sh"
                $<TARGET_FILE:procpool_trace> "${PROJECT_SOURCE_DIR}/tests/trace")
      set_tests_properties(trace_svg PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
    endif()
  else()
    message(STATUS "procpool: jansson not found by pkg-config (Debian: libjansson-dev): procpool-trace, the trace-to-SVG renderer, is left out")
  endif()
endif()
