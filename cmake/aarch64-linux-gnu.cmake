# CMake toolchain file: cross-build trit for aarch64 Linux with Debian's cross compiler and run the
# built programs (ctest, try_run) under qemu-user. The packages it needs and the full recipe (what
# .ci/run does) are in docs/arm.md; in short:
#
#   cmake -S . -B build-arm64 --toolchain cmake/aarch64-linux-gnu.cmake -DTRIT_CUDA=OFF -DTRIT_MPI=OFF \
#         [-DTRIT_ARM64_OVERLAY=DIR] [-DTRIT_QEMU_CPU=max]
#   cmake --build build-arm64 -j2
#   ctest --test-dir build-arm64 -L unit --output-on-failure
#
# Libraries: the arm64 packages are multiarch (/usr/lib/aarch64-linux-gnu, headers in /usr/include),
# so the sysroot stays "/" and find_library / pkg-config look only in the aarch64 folders.
#
# TRIT_ARM64_OVERLAY (optional): a folder holding arm64 packages unpacked with dpkg-deb -x rather than
# installed, searched before the system: Debian 12 cannot install libcriterion-dev:arm64 beside
# libcriterion-dev:amd64 (libnanomsg5 and libhttp-parser-dev are not Multi-Arch: same), so .ci/run
# unpacks libcriterion3, libcriterion-dev, libnanomsg5, libnanomsg-dev, libgit2-dev and
# libhttp-parser-dev (arm64) there and installs only the co-installable rest (docs/arm.md).
#
# Running: ctest prepends CMAKE_CROSSCOMPILING_EMULATOR to every test whose command is a target of
# this project (tests/ctest_*.cmake prepend it to the programs their scripts launch).
#   -cpu C          the emulated CPU: TRIT_QEMU_CPU (cache variable), default "max" (Armv8.x/9 with
#                   DotProd and I8MM); "cortex-a57" is Armv8.0, NEON without DotProd.
#   -E QEMU_CPU=C   the same CPU for the programs the test execs: Criterion's BoxFort runs every
#                   test in a child that re-executes the test binary (execve), which the kernel
#                   hands to qemu through binfmt_misc (package qemu-user-binfmt, registration
#                   "qemu-aarch64"), and that qemu reads its CPU from QEMU_CPU, not from our -cpu.
#                   Without the binfmt registration every Criterion test fails with "Could not spawn
#                   test instance: Protocol error".
#   -L /            dynamic loader and libc from the arm64 multiarch packages (libc6:arm64, pulled
#                   in by the arm64 libraries), like every other library the tests load. Not
#                   /usr/aarch64-linux-gnu: that loader (libc6-arm64-cross) is another glibc build
#                   than /lib/aarch64-linux-gnu/libc.so.6, and the mix hangs in pthread_create.
#                   (-E QEMU_LD_PREFIX=/ gives the exec'd children the same.)
# Changing TRIT_QEMU_CPU on a configured tree only rewrites the test commands (nothing recompiles):
#   cmake build-arm64 -DTRIT_QEMU_CPU=cortex-a57 && ctest --test-dir build-arm64 -L unit
# TRIT_QEMU_CPU=native leaves the emulator unset, for an aarch64 machine that uses this file only
# for the compiler.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(TRIT_CROSS_TRIPLE aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${TRIT_CROSS_TRIPLE}-gcc)
# The project is C only; tests/ctest_header.cmake finds a host C++ compiler for its syntax check.
set(CMAKE_LIBRARY_ARCHITECTURE ${TRIT_CROSS_TRIPLE})

# Libraries, headers and packages of the target only; programs (pkg-config, qemu) of the host.
# With CMAKE_LIBRARY_ARCHITECTURE, find_library looks in /usr/lib/aarch64-linux-gnu and
# /lib/aarch64-linux-gnu and never in the x86-64 multiarch folders.
set(TRIT_ARM64_OVERLAY "" CACHE PATH "unpacked arm64 packages searched before the system (optional)")
# try_compile projects read this file again, in the same process: without these two they would
# reset PKG_CONFIG_LIBDIR (below) to the folders without the overlay.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TRIT_ARM64_OVERLAY TRIT_QEMU_CPU)
set(CMAKE_FIND_ROOT_PATH /usr/${TRIT_CROSS_TRIPLE} /)
set(_trit_pc_dirs /usr/lib/${TRIT_CROSS_TRIPLE}/pkgconfig /usr/share/pkgconfig)
if(TRIT_ARM64_OVERLAY)
  set(_trit_ovl_lib ${TRIT_ARM64_OVERLAY}/usr/lib/${TRIT_CROSS_TRIPLE})
  # find_library re-roots the -L folders of the .pc files (/usr/lib/aarch64-linux-gnu) under each
  # root in order: the overlay's copy wins
  list(PREPEND CMAKE_FIND_ROOT_PATH ${TRIT_ARM64_OVERLAY})
  list(PREPEND _trit_pc_dirs ${_trit_ovl_lib}/pkgconfig)
  # the overlay's headers after the system's (Criterion's headers are the same for every
  # architecture: the amd64 package's copy in /usr/include is used when it is there)
  # (CMake reads this file more than once per configure: append once)
  if(NOT CMAKE_C_FLAGS_INIT MATCHES "-idirafter")
    string(APPEND CMAKE_C_FLAGS_INIT " -idirafter ${TRIT_ARM64_OVERLAY}/usr/include")
  endif()
  # the linker resolves libcriterion's own dependencies (libnanomsg) there; programs find them at
  # run time through the emulator's LD_LIBRARY_PATH (below)
  foreach(kind EXE SHARED MODULE)
    if(NOT CMAKE_${kind}_LINKER_FLAGS_INIT MATCHES "-rpath-link")
      string(APPEND CMAKE_${kind}_LINKER_FLAGS_INIT " -Wl,-rpath-link,${_trit_ovl_lib}")
    endif()
  endforeach()
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config: only the arm64 .pc files and the architecture-independent ones. Set in the
# environment of the CMake process, so every configure and re-configure sees it.
string(REPLACE ";" ":" _trit_pc_dirs "${_trit_pc_dirs}")
set(ENV{PKG_CONFIG_LIBDIR} "${_trit_pc_dirs}")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

set(TRIT_QEMU_CPU "max" CACHE STRING "CPU model for qemu-aarch64 (qemu-aarch64 -cpu help); native: no emulator")
if(TRIT_QEMU_CPU AND NOT TRIT_QEMU_CPU STREQUAL "native")
  find_program(TRIT_QEMU_AARCH64 qemu-aarch64)
  if(NOT TRIT_QEMU_AARCH64)
    message(FATAL_ERROR "qemu-aarch64 not found: install qemu-user, or configure with -DTRIT_QEMU_CPU=native")
  endif()
  set(CMAKE_CROSSCOMPILING_EMULATOR ${TRIT_QEMU_AARCH64} -cpu ${TRIT_QEMU_CPU} -E QEMU_CPU=${TRIT_QEMU_CPU}
      -L / -E QEMU_LD_PREFIX=/)
  if(TRIT_ARM64_OVERLAY)
    # for the guest's dynamic loader, in the test and in the children it execs
    list(APPEND CMAKE_CROSSCOMPILING_EMULATOR -E LD_LIBRARY_PATH=${_trit_ovl_lib})
  endif()
  file(GLOB _trit_binfmt /proc/sys/fs/binfmt_misc/*aarch64*)
  if(NOT _trit_binfmt)
    message(WARNING "no binfmt_misc entry for aarch64 programs (/proc/sys/fs/binfmt_misc/*aarch64*): "
            "the Criterion tests re-execute themselves and will fail under qemu without one. "
            "Install qemu-user-binfmt and register it (docs/arm.md).")
  endif()
endif()
