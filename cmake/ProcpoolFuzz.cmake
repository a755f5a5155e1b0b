# ---------------------------------------------------------------------------
# libFuzzer harness for the parent's decoders of what workers and the zygote
# write (src/decode.c; tests/fuzz/fuzz_decode.c; clang only). The decoders
# are linked from procpool_static, never copied: with PROCPOOL_FUZZ the
# library's objects are built with the fuzzer's coverage and ASan+UBSan, so
# the harness sees inside them and every program linking the library links
# the sanitizer runtimes. .ci/run runs it for 60 seconds:
#   CC=clang cmake -S . -B build-fuzz -DPROCPOOL_FUZZ=ON -DPROCPOOL_TESTS=OFF
#   cmake --build build-fuzz --target fuzz_decode
#   build-fuzz/fuzz_decode -max_total_time=60 tests/fuzz/corpus_decode
# ---------------------------------------------------------------------------
if(PROCPOOL_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(_pp_fuzz_san -fsanitize=address,undefined -fno-sanitize-recover=all
                     -fno-omit-frame-pointer)
    target_compile_options(procpool_objects PRIVATE -fsanitize=fuzzer-no-link ${_pp_fuzz_san})
    foreach(_t procpool procpool_static)
      target_link_options(${_t} INTERFACE ${_pp_fuzz_san})
    endforeach()

    add_executable(fuzz_decode "${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_decode.c")
    target_compile_options(fuzz_decode PRIVATE -fsanitize=fuzzer ${_pp_fuzz_san})
    target_link_options(fuzz_decode PRIVATE -fsanitize=fuzzer ${_pp_fuzz_san})
    target_include_directories(fuzz_decode PRIVATE "${PROJECT_SOURCE_DIR}/src")
    target_link_libraries(fuzz_decode PRIVATE procpool_static Threads::Threads)
    if(PROCPOOL_LIBM)
      target_link_libraries(fuzz_decode PRIVATE m)
    endif()
  else()
    message(WARNING "procpool: PROCPOOL_FUZZ needs clang (libFuzzer); fuzz_decode not built")
  endif()
endif()
