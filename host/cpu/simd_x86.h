/*
 * simd_x86.h: the x86-64 intrinsics and the target attributes of the CPU kernel families, in one
 * place. Each SIMD function carries the attribute of its family and runs only when the active
 * family includes it (core/cpu_features.h), so the library needs no -march flag.
 *
 *   TRIT_TARGET_AVX2    AVX2 + FMA + F16C (the avx2 family)
 *   TRIT_TARGET_AVX512  AVX-512 F/BW/VL/DQ + VNNI (the avx512 and amx families; AMX adds its own)
 *
 * The test build TRIT_EMULATE_AVX512 (CMakeLists.txt) runs the AVX-512 code on machines without
 * AVX-512: the AVX-512 intrinsics become the exact emulations of cpu/avx512_emu.h, the AVX-512
 * functions are compiled for AVX2, and cpu_features reports the avx512 family wherever AVX2 runs.
 */
#ifndef TRIT_CPU_SIMD_X86_H
#define TRIT_CPU_SIMD_X86_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TRIT_TARGET_AVX2_STR "avx2,fma,f16c"
#ifdef TRIT_EMULATE_AVX512
#include "cpu/avx512_emu.h"
#define TRIT_TARGET_AVX512_STR TRIT_TARGET_AVX2_STR
#else
#define TRIT_TARGET_AVX512_STR "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"
#endif
#define TRIT_TARGET_AVX2 __attribute__((target(TRIT_TARGET_AVX2_STR)))
#define TRIT_TARGET_AVX512 __attribute__((target(TRIT_TARGET_AVX512_STR)))
#endif

#endif /* TRIT_CPU_SIMD_X86_H */
