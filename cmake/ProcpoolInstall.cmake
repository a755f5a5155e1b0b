# ---------------------------------------------------------------------------
# Install: libraries, header, man pages, pkg-config files, CMake package, and
# Debian packages through CPack. Components, as Debian splits them:
#   lib     libprocpool.so.0                         -> libprocpool0
#   dev     header, libprocpool.so/.a, .pc, CMake, man3 -> libprocpool-dev
#   mpi     libprocpool_mpi.so.0                     -> libprocpool-mpi0
#   mpidev  libprocpool_mpi.so/.a, its .pc and CMake targets -> libprocpool-mpi-dev
#   cli     bin/procpool, procpool.1                 -> procpool
# ---------------------------------------------------------------------------
if(NOT PROCPOOL_INSTALL)
  return()
endif()
include(CMakePackageConfigHelpers)

install(TARGETS procpool EXPORT procpoolTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS procpool_static EXPORT procpoolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES "${PROJECT_SOURCE_DIR}/include/procpool.h"
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/man/man3"
  DESTINATION ${CMAKE_INSTALL_MANDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.3")
if(PROCPOOL_HAVE_MPI)
  install(TARGETS procpool_mpi EXPORT procpoolMpiTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT mpi NAMELINK_COMPONENT mpidev)
  install(TARGETS procpool_mpi_static EXPORT procpoolMpiTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT mpidev)
endif()

# pkg-config files, written at install time so that `cmake --install
# --prefix X` names X, not the configure-time prefix:
#   procpool             the shared library (what most programs want)
#   procpool-static      libprocpool.a and what it needs
#   procpool-mpi-static  the MPI backend linked into a static program
# Installed outside the system's library directories, the shared library's
# Libs carry a run path, so programs built with them start without
# LD_LIBRARY_PATH.
set(_pp_libs_private "-pthread")
if(PROCPOOL_LIBM)
  string(APPEND _pp_libs_private " -lm")
endif()
foreach(_l IN LISTS CMAKE_DL_LIBS)
  string(APPEND _pp_libs_private " -l${_l}")
endforeach()
set(_pp_mpi_libs "")
if(PROCPOOL_HAVE_MPI)
  # the MPI link flags, as the MPI compiler wrapper would add them
  foreach(_l IN LISTS MPI_C_LIBRARIES)
    get_filename_component(_dir "${_l}" DIRECTORY)
    get_filename_component(_name "${_l}" NAME_WE)
    string(REGEX REPLACE "^lib" "" _name "${_name}")
    string(APPEND _pp_mpi_libs " -L${_dir} -l${_name}")
  endforeach()
  if(MPI_C_LINK_FLAGS)
    string(APPEND _pp_mpi_libs " ${MPI_C_LINK_FLAGS}")
  endif()
endif()
set(_pp_pc_code "
  set(_prefix \"\${CMAKE_INSTALL_PREFIX}\")
  set(_libdir [==[${CMAKE_INSTALL_LIBDIR}]==])
  set(_incdir [==[${CMAKE_INSTALL_INCLUDEDIR}]==])
  if(NOT IS_ABSOLUTE \"\${_libdir}\")
    set(_libdir_abs \"\${_prefix}/\${_libdir}\")
    set(_libdir \"\\\${prefix}/\${_libdir}\")
  else()
    set(_libdir_abs \"\${_libdir}\")
  endif()
  if(NOT IS_ABSOLUTE \"\${_incdir}\")
    set(_incdir \"\\\${prefix}/\${_incdir}\")
  endif()
  set(_rpath \"\")
  if(NOT _libdir_abs MATCHES \"^/(usr/)?lib(32|64|x32)?(/[^/]*-linux-gnu[^/]*)?/?$\")
    set(_rpath \" -Wl,-rpath,\\\${libdir}\")
  endif()
  set(_head \"prefix=\${_prefix}\\nexec_prefix=\\\${prefix}\\nlibdir=\${_libdir}\\nincludedir=\${_incdir}\\n\\n\")
  set(_ver [==[${PROJECT_VERSION}]==])
  file(WRITE [==[${PROJECT_BINARY_DIR}/pc/procpool.pc]==] \"\${_head}Name: procpool
Description: A process pool for C, modelled on Python's multiprocessing.Pool
Version: \${_ver}
Libs: -L\\\${libdir} -lprocpool\${_rpath}
Libs.private: ${_pp_libs_private}
Cflags: -I\\\${includedir}
\")
  file(WRITE [==[${PROJECT_BINARY_DIR}/pc/procpool-static.pc]==] \"\${_head}Name: procpool-static
Description: procpool linked statically (libprocpool.a)
Version: \${_ver}
Libs: \\\${libdir}/libprocpool.a ${_pp_libs_private}
Cflags: -I\\\${includedir}
\")
  file(WRITE [==[${PROJECT_BINARY_DIR}/pc/procpool-mpi-static.pc]==] \"\${_head}Name: procpool-mpi-static
Description: procpool and its MPI backend linked statically (libprocpool_mpi.a)
Version: \${_ver}
Requires: procpool-static = \${_ver}
Libs: -Wl,--undefined=pp_mpi_backend_v1 \\\${libdir}/libprocpool_mpi.a ${_pp_mpi_libs}
Cflags: -I\\\${includedir}
\")
")
install(CODE "${_pp_pc_code}" COMPONENT dev)
install(FILES "${PROJECT_BINARY_DIR}/pc/procpool.pc" "${PROJECT_BINARY_DIR}/pc/procpool-static.pc"
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
if(PROCPOOL_HAVE_MPI)
  install(CODE "${_pp_pc_code}" COMPONENT mpidev)
  install(FILES "${PROJECT_BINARY_DIR}/pc/procpool-mpi-static.pc"
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT mpidev)
endif()

# The CMake package: find_package(procpool 0.2) gives procpool::procpool and
# procpool::procpool_static; with the MPI parts installed (and MPI found),
# procpool::procpool_mpi and procpool::procpool_mpi_static too.
set(PROCPOOL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/procpool)
install(EXPORT procpoolTargets FILE procpoolTargets.cmake NAMESPACE procpool::
  DESTINATION ${PROCPOOL_CMAKE_DIR} COMPONENT dev)
if(PROCPOOL_HAVE_MPI)
  install(EXPORT procpoolMpiTargets FILE procpoolMpiTargets.cmake NAMESPACE procpool::
    DESTINATION ${PROCPOOL_CMAKE_DIR} COMPONENT mpidev)
endif()
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/procpoolConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/procpoolConfig.cmake"
  INSTALL_DESTINATION ${PROCPOOL_CMAKE_DIR})
# 0.x: a minor bump may break the API, so only the same minor is compatible.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/procpoolConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/procpoolConfig.cmake"
  "${PROJECT_BINARY_DIR}/procpoolConfigVersion.cmake"
  DESTINATION ${PROCPOOL_CMAKE_DIR} COMPONENT dev)

# Root installing where the dynamic linker looks (/usr/local/lib, /usr/lib):
# refresh its cache, as a fresh Debian has never run ldconfig for
# /usr/local/lib. Not under DESTDIR (packaging) or for other prefixes.
install(CODE [[
  if("$ENV{DESTDIR}" STREQUAL "" AND CMAKE_INSTALL_PREFIX MATCHES "^/usr(/local)?/?$")
    execute_process(COMMAND id -u OUTPUT_VARIABLE _uid OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET)
    find_program(_ldconfig ldconfig PATHS /sbin /usr/sbin)
    if(_uid STREQUAL "0" AND _ldconfig)
      message(STATUS "procpool: running ${_ldconfig}")
      execute_process(COMMAND "${_ldconfig}")
    endif()
  endif()
]] COMPONENT lib)

include(cmake/ProcpoolPackage.cmake)
