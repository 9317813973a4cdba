/* cpu_features.c: CPU feature detection and the kernel-family choice; see cpu_features.h. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall() */
#endif
#include "core/cpu_features.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define TRIT_X86_64 1
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(TRIT_X86_64) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static struct trit_cpu_features g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ---- x86-64 ------------------------------------------------------------------------------- */
#ifdef TRIT_X86_64
/* XCR0 via xgetbv; only called once cpuid has reported OSXSAVE. Encoded as bytes so that no
 * target attribute is needed. */
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect_x86(struct trit_cpu_features *f) {
    unsigned int a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d)) return;
    bool osxsave = (c >> 27) & 1u;
    bool avx = (c >> 28) & 1u;
    bool fma = (c >> 12) & 1u;
    bool f16c = (c >> 29) & 1u;
    if (!osxsave || !avx) return;
    unsigned long long xcr0 = xgetbv0();
    bool os_ymm = (xcr0 & 0x6u) == 0x6u;    /* XMM and YMM state */
    bool os_zmm = (xcr0 & 0xE6u) == 0xE6u;  /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_ymm) return;
    f->fma = fma;
    f->f16c = f16c;

    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = (b >> 5) & 1u;
    if (os_zmm) {
        f->avx512f = (b >> 16) & 1u;
        f->avx512bw = f->avx512f && ((b >> 30) & 1u);
        f->avx512dq = f->avx512f && ((b >> 17) & 1u);
        f->avx512vl = f->avx512f && ((b >> 31) & 1u);
        f->avx512_vnni = f->avx512f && ((c >> 11) & 1u);
        f->avx512_vpopcntdq = f->avx512f && ((c >> 14) & 1u);
    }
    /* AMX: TILE and INT8 (EDX bits 24, 25), XCR0 TILECFG and TILEDATA (bits 17, 18), and on Linux
     * the per-process permission for the 8 KB tile data state (arch_prctl ARCH_REQ_XCOMP_PERM). */
    bool amx_cpu = ((d >> 24) & 1u) && ((d >> 25) & 1u) && (xcr0 & 0x60000u) == 0x60000u;
#if defined(__linux__)
    if (amx_cpu) amx_cpu = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    amx_cpu = false; /* the kernels are only tested on Linux */
#endif
    f->amx_int8 = amx_cpu && f->avx512bw && f->avx512vl && f->avx512_vnni;
#ifdef TRIT_EMULATE_AVX512
    /* the test build that runs the AVX-512 kernels through cpu/avx512_emu.h: the avx512 family
     * wherever the avx2 family runs (the emulation is compiled for AVX2), and no AMX */
    const bool emu = f->avx2 && fma && f16c;
    f->avx512f = f->avx512bw = f->avx512dq = f->avx512vl = f->avx512_vnni = emu;
    f->amx_int8 = false;
#endif
    if (a >= 1) { /* leaf 7 has sub-leaf 1 */
        unsigned int a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        (void)b1, (void)c1, (void)d1;
        f->avx_vnni = f->avx2 && ((a1 >> 4) & 1u);
    }
}
#endif

static void detect(void) {
    struct trit_cpu_features f;
    memset(&f, 0, sizeof f);
#ifdef TRIT_X86_64
    detect_x86(&f);
#endif
#if defined(__aarch64__)
    f.neon = true;
#if defined(__linux__)
    unsigned long hwcap = getauxval(AT_HWCAP);
    f.dotprod = (hwcap >> 20) & 1ul; /* HWCAP_ASIMDDP */
#elif defined(__ARM_FEATURE_DOTPROD)
    f.dotprod = true;
#endif
#endif
    g_features = f;
}

const struct trit_cpu_features *trit_cpu_features_get(void) {
    pthread_once(&g_once, detect);
    return &g_features;
}

/* ---- kernel families ---------------------------------------------------------------------- */

static const char *const isa_names[TRIT_CPU_ISA_COUNT] = {
    [TRIT_CPU_ISA_SCALAR] = "scalar",  [TRIT_CPU_ISA_AVX2] = "avx2",
    [TRIT_CPU_ISA_AVX512_VNNI] = "avx512", [TRIT_CPU_ISA_NEON] = "neon",
    [TRIT_CPU_ISA_NEON_DOTPROD] = "neon_dotprod", [TRIT_CPU_ISA_AMX] = "amx",
};

const char *trit_cpu_isa_name(enum trit_cpu_isa isa) {
    if ((unsigned)isa >= TRIT_CPU_ISA_COUNT) return "?";
    return isa_names[isa];
}

enum trit_status trit_cpu_isa_parse(const char *name, enum trit_cpu_isa *out) {
    if (!name || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_isa_parse: NULL argument");
    for (int i = 0; i < TRIT_CPU_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i]) == 0) {
            *out = (enum trit_cpu_isa)i;
            return TRIT_OK;
        }
    }
    return trit_error(TRIT_ERR_INVALID_ARG,
                      "unknown CPU kernel family '%s' (scalar, avx2, avx512, amx, neon, neon_dotprod)", name);
}

bool trit_cpu_isa_supported(enum trit_cpu_isa isa) {
    const struct trit_cpu_features *f = trit_cpu_features_get();
    switch (isa) {
    case TRIT_CPU_ISA_SCALAR: return true;
#ifdef TRIT_X86_64
    case TRIT_CPU_ISA_AVX2: return f->avx2 && f->fma && f->f16c; /* every AVX2 CPU so far has both */
    case TRIT_CPU_ISA_AVX512_VNNI: /* and the avx2 family, whose code the AVX-512 functions inline */
        return f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512_vnni && f->avx2 && f->fma && f->f16c;
    case TRIT_CPU_ISA_AMX: return f->amx_int8 && trit_cpu_isa_supported(TRIT_CPU_ISA_AVX512_VNNI);
#endif
#ifdef __aarch64__
    case TRIT_CPU_ISA_NEON: return f->neon;
    case TRIT_CPU_ISA_NEON_DOTPROD: return f->neon && f->dotprod;
#endif
    default: (void)f; return false;
    }
}

enum trit_cpu_isa trit_cpu_isa_best(void) {
    static const enum trit_cpu_isa order[] = {TRIT_CPU_ISA_AMX, TRIT_CPU_ISA_AVX512_VNNI, TRIT_CPU_ISA_AVX2,
                                              TRIT_CPU_ISA_NEON_DOTPROD, TRIT_CPU_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (trit_cpu_isa_supported(order[i])) return order[i];
    return TRIT_CPU_ISA_SCALAR;
}

enum trit_status trit_cpu_isa_select(enum trit_cpu_isa *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_isa_select: NULL argument");
    const char *env = getenv("TRIT_CPU");
    if (!env || !*env) {
        *out = trit_cpu_isa_best();
        return TRIT_OK;
    }
    enum trit_cpu_isa isa = TRIT_CPU_ISA_SCALAR;
    TRIT_TRY(trit_cpu_isa_parse(env, &isa));
    if (!trit_cpu_isa_supported(isa))
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "TRIT_CPU=%s: this CPU or build cannot run that kernel family", env);
    *out = isa;
    return TRIT_OK;
}

/* ---- the active family ---------------------------------------------------------------------- */

static _Atomic int g_active = -1; /* enum trit_cpu_isa once chosen */
static pthread_once_t g_active_once = PTHREAD_ONCE_INIT;

static void choose_active(void) {
    enum trit_cpu_isa isa = TRIT_CPU_ISA_SCALAR;
    if (trit_cpu_isa_select(&isa) != TRIT_OK) {
        isa = TRIT_CPU_ISA_SCALAR; /* the backend's init reports the bad TRIT_CPU */
        trit_error_clear();
    }
    int unset = -1;
    atomic_compare_exchange_strong(&g_active, &unset, (int)isa); /* set_active may have run first */
}

enum trit_cpu_isa trit_cpu_isa_active(void) {
    int v = atomic_load_explicit(&g_active, memory_order_relaxed);
    if (TRIT_LIKELY(v >= 0)) return (enum trit_cpu_isa)v;
    pthread_once(&g_active_once, choose_active);
    return (enum trit_cpu_isa)atomic_load(&g_active);
}

enum trit_status trit_cpu_isa_set_active(enum trit_cpu_isa isa) {
    if (!trit_cpu_isa_supported(isa))
        return trit_error(TRIT_ERR_UNSUPPORTED, "kernel family %s cannot run on this CPU or build",
                          trit_cpu_isa_name(isa));
    atomic_store(&g_active, (int)isa);
    return TRIT_OK;
}

enum trit_cpu_vec trit_cpu_isa_vec(enum trit_cpu_isa isa) {
    switch (isa) {
    case TRIT_CPU_ISA_AVX2: return TRIT_CPU_VEC_AVX2;
    case TRIT_CPU_ISA_AVX512_VNNI:
    case TRIT_CPU_ISA_AMX: return TRIT_CPU_VEC_AVX512;
    default: return TRIT_CPU_VEC_BASE;
    }
}

enum trit_cpu_vec trit_cpu_vec_active(void) { return trit_cpu_isa_vec(trit_cpu_isa_active()); }

const char *trit_cpu_vec_name(enum trit_cpu_vec v) {
    switch (v) {
    case TRIT_CPU_VEC_BASE: return "base";
    case TRIT_CPU_VEC_AVX2: return "avx2";
    case TRIT_CPU_VEC_AVX512: return "avx512";
    }
    return "?";
}
