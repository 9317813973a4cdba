/*
 * cpu_features.h: what the CPU we run on can do, and which kernel family (ISA) the CPU backend
 * uses. Detection runs once (cpuid + xgetbv on x86-64, getauxval on aarch64 Linux) and is cached.
 *
 * The environment variable TRIT_CPU=scalar|avx2|avx512|amx|neon|neon_dotprod forces one kernel family,
 * so that every path can be tested on one machine. Naming a family this machine cannot run is an
 * error (no silent fallback), reported by trit_cpu_isa_select().
 */
#ifndef TRIT_CPU_FEATURES_H
#define TRIT_CPU_FEATURES_H

#include <stdbool.h>

#include "core/core.h"

/* Each flag is set only when both the CPU reports the instructions and the OS saves the register
 * state they need (XCR0 bits 1-2 for AVX, 5-7 for the AVX-512 opmask and ZMM registers). */
struct trit_cpu_features {
    /* x86-64 */
    bool avx2;             /* AVX2 (with AVX and OS YMM support) */
    bool fma;              /* FMA3 */
    bool avx512f;          /* AVX-512 Foundation (OS ZMM support included) */
    bool avx512bw;         /* byte and word instructions */
    bool avx512vl;         /* 128/256-bit forms of AVX-512 instructions */
    bool avx512_vnni;      /* vpdpbusd / vpdpwssd on ZMM */
    bool avx_vnni;         /* VEX-encoded vpdpbusd on YMM (Alder Lake and later) */
    bool avx512_vpopcntdq; /* vpopcntd / vpopcntq */
    bool amx_int8;         /* AMX tiles with int8 dot products, usable: CPU, XCR0 and (Linux) the
                            * process's permission to use the tile data state, requested here */
    /* aarch64 */
    bool neon;    /* Advanced SIMD (always present on aarch64) */
    bool dotprod; /* sdot / udot (Armv8.2 DotProd) */
};

/* The detected features; detection runs on the first call (thread safe), later calls are a load. */
const struct trit_cpu_features *trit_cpu_features_get(void);

/* Kernel families of the CPU backend. Append only (benchmark CSVs record the number). */
enum trit_cpu_isa {
    TRIT_CPU_ISA_SCALAR = 0,       /* portable C, any CPU */
    TRIT_CPU_ISA_AVX2 = 1,         /* x86-64 AVX2: vpmaddubsw + vpmaddwd */
    TRIT_CPU_ISA_AVX512_VNNI = 2,  /* x86-64 AVX-512 F/BW/VL + VNNI: vpdpbusd on ZMM */
    TRIT_CPU_ISA_NEON = 3,         /* aarch64 Advanced SIMD: smull + sadalp */
    TRIT_CPU_ISA_NEON_DOTPROD = 4, /* aarch64 with DotProd: sdot */
    TRIT_CPU_ISA_AMX = 5,          /* x86-64 AMX-INT8 tiles for m >= 8 tokens, AVX-512 VNNI below */
    TRIT_CPU_ISA_COUNT = 6,
};

/* "scalar", "avx2", "avx512", "neon", "neon_dotprod", "amx"; "?" for an out-of-range value. */
const char *trit_cpu_isa_name(enum trit_cpu_isa isa);
/* Parses a name of trit_cpu_isa_name; TRIT_ERR_INVALID_ARG for an unknown one. */
enum trit_status trit_cpu_isa_parse(const char *name, enum trit_cpu_isa *out);
/* true when the family is compiled into this build and this CPU can run it. */
bool trit_cpu_isa_supported(enum trit_cpu_isa isa);
/* The fastest supported family. */
enum trit_cpu_isa trit_cpu_isa_best(void);
/* The family the CPU backend uses: TRIT_CPU when set, else trit_cpu_isa_best(). Fails with
 * TRIT_ERR_INVALID_ARG for an unknown TRIT_CPU name and TRIT_ERR_UNSUPPORTED for a family this
 * machine cannot run; *out is left untouched then. */
enum trit_status trit_cpu_isa_select(enum trit_cpu_isa *out);

#endif /* TRIT_CPU_FEATURES_H */
