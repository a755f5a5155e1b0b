# ---------------------------------------------------------------------------
# Debian packages: `cpack -G DEB` in the build directory (make deb) writes
# one .deb per component (cmake/ProcpoolInstall.cmake), installed under
# /usr as Debian lays it out. Dependencies on system libraries come from
# dpkg-shlibdeps where dpkg-dev is installed; between the parts they are
# exact versions.
# ---------------------------------------------------------------------------
set(CPACK_PACKAGE_NAME procpool)
set(CPACK_PACKAGE_VENDOR "the procpool authors")
set(CPACK_PACKAGE_CONTACT "procpool authors <procpool@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "process pool for C, modelled on Python's multiprocessing.Pool")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/README.md")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/procpool")
# The libraries' dependencies on libc and libmpi come from dpkg-shlibdeps
# (dpkg-dev) where it is installed; the command's are written out (it needs
# libprocpool0 from the same build, which dpkg-shlibdeps cannot see).
find_program(_pp_dpkg_shlibdeps dpkg-shlibdeps)
if(_pp_dpkg_shlibdeps)
  set(CPACK_DEBIAN_LIB_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_MPI_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_LIB_PACKAGE_DEPENDS "libc6 (>= 2.34)")
  set(CPACK_DEBIAN_MPI_PACKAGE_DEPENDS "libc6 (>= 2.34), libopenmpi3")
endif()
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)

set(_v "${PROJECT_VERSION}")
set(CPACK_DEBIAN_LIB_PACKAGE_NAME libprocpool0)
set(CPACK_DEBIAN_LIB_DESCRIPTION " procpool runs plain C functions in a pool of worker processes fed through
 shared memory, with futures, maps and crash isolation.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libprocpool-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libprocpool0 (= ${_v})")
set(CPACK_DEBIAN_DEV_DESCRIPTION " The header, the static library, pkg-config and CMake files, and the
 section-3 manual pages of procpool.")
set(CPACK_DEBIAN_MPI_PACKAGE_NAME libprocpool-mpi0)
if(CPACK_DEBIAN_MPI_PACKAGE_DEPENDS)
  string(APPEND CPACK_DEBIAN_MPI_PACKAGE_DEPENDS ", libprocpool0 (= ${_v})")
else()
  set(CPACK_DEBIAN_MPI_PACKAGE_DEPENDS "libprocpool0 (= ${_v})")
endif()
set(CPACK_DEBIAN_MPI_DESCRIPTION " Loaded by libprocpool0 when a program runs under mpirun with
 PROCPOOL_BACKEND=mpi: its pools then run tasks on every node of the job.")
set(CPACK_DEBIAN_MPIDEV_PACKAGE_NAME libprocpool-mpi-dev)
set(CPACK_DEBIAN_MPIDEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_MPIDEV_PACKAGE_DEPENDS
    "libprocpool-dev (= ${_v}), libprocpool-mpi0 (= ${_v}), libopenmpi-dev")
set(CPACK_DEBIAN_MPIDEV_DESCRIPTION " The static MPI backend, for programs linked statically, and its
 pkg-config and CMake files.")
set(CPACK_DEBIAN_CLI_PACKAGE_NAME procpool)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "libprocpool0 (= ${_v}), libc6 (>= 2.34)")
if(TARGET procpool_trace)
  # procpool-trace (the trace renderer) is in the same package
  string(APPEND CPACK_DEBIAN_CLI_PACKAGE_DEPENDS ", libjansson4")
endif()
set(CPACK_DEBIAN_CLI_DESCRIPTION " The procpool command runs shell commands in parallel with GNU parallel's
 interface, each job in a worker process of a procpool pool.")

set(CPACK_COMPONENTS_ALL lib dev)
if(PROCPOOL_HAVE_MPI)
  list(APPEND CPACK_COMPONENTS_ALL mpi mpidev)
endif()
if(PROCPOOL_CLI)
  list(APPEND CPACK_COMPONENTS_ALL cli)
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_OUTPUT_FILE_PREFIX "${PROJECT_BINARY_DIR}/packages")
include(CPack)
