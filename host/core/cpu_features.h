/*
 * cpu_features.h: what the CPU we run on can do, and which kernel family (ISA) the CPU backend
 * uses. Detection runs once (cpuid + xgetbv on x86-64, getauxval on aarch64 Linux) and is cached.
 *
 * The environment variable TRIT_CPU=scalar|avx2|avx512|amx|neon|neon_dotprod forces one kernel family,
 * so that every path can be tested on one machine. Naming a family this machine cannot run is an
 * error (no silent fallback), reported by trit_cpu_isa_select().
 *
 * One family per process: trit_cpu_isa_active() is the family every SIMD path of the CPU code
 * dispatches on (the ternary kernels, the fp32 operations of cpu/ops.c, both LM heads), so that
 * TRIT_CPU=avx2 on an AVX-512 machine runs the AVX2 code everywhere, never a mixture. The build
 * needs no -march flag: every SIMD function carries its own target attribute and runs only when
 * the active family includes it, so one binary is right on every x86-64 (and every aarch64).
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
    bool f16c;             /* vcvtph2ps / vcvtps2ph */
    bool avx512f;          /* AVX-512 Foundation (OS ZMM support included) */
    bool avx512bw;         /* byte and word instructions */
    bool avx512dq;         /* doubleword and quadword instructions */
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
    TRIT_CPU_ISA_AVX2 = 1,         /* x86-64 AVX2 + FMA + F16C: vpmaddubsw + vpmaddwd */
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
/* The family TRIT_CPU asks for when set, else trit_cpu_isa_best(). Reads the environment on
 * every call. Fails with TRIT_ERR_INVALID_ARG for an unknown TRIT_CPU name and
 * TRIT_ERR_UNSUPPORTED for a family this machine cannot run; *out is left untouched then. The CPU
 * backend calls it at init, so that a bad TRIT_CPU is an error there. */
enum trit_status trit_cpu_isa_select(enum trit_cpu_isa *out);

/* The family this process runs (see the top of this file). Fixed on the first call from
 * trit_cpu_isa_select(), or scalar when TRIT_CPU is invalid (trit_cpu_isa_select reports that);
 * afterwards a load. Thread safe. */
enum trit_cpu_isa trit_cpu_isa_active(void);
/* Makes isa the active family, for tests and benchmarks that compare families in one process.
 * TRIT_ERR_UNSUPPORTED when this machine cannot run it. Call it while no CPU work is running:
 * matrices packed earlier keep the family they were packed for. */
enum trit_status trit_cpu_isa_set_active(enum trit_cpu_isa isa);

/* The vector width of the fp32 code (cpu/ops.c, the dense LM head, the int8 head's kernels) for a
 * family. x86-64 only; every other family runs the portable C, which the compiler vectorizes for
 * the baseline of its target (SSE2 on x86-64, Advanced SIMD on aarch64). */
enum trit_cpu_vec {
    TRIT_CPU_VEC_BASE = 0,   /* portable C */
    TRIT_CPU_VEC_AVX2 = 1,   /* AVX2 + FMA + F16C, 8 floats */
    TRIT_CPU_VEC_AVX512 = 2, /* AVX-512 F/BW/VL(/VNNI), 16 floats */
};
enum trit_cpu_vec trit_cpu_isa_vec(enum trit_cpu_isa isa);
/* trit_cpu_isa_vec(trit_cpu_isa_active()). */
enum trit_cpu_vec trit_cpu_vec_active(void);
/* "base", "avx2", "avx512". */
const char *trit_cpu_vec_name(enum trit_cpu_vec v);

#endif /* TRIT_CPU_FEATURES_H */
