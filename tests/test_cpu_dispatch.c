// labels: unit
// cpu families: each
/*
 * test_cpu_dispatch.c: one kernel family per process, whatever the machine. Under TRIT_CPU=FAMILY
 * (one ctest entry per family, tests/CMakeLists.txt) every dispatcher of the CPU code chooses that
 * family: the active family, the ternary kernels' packing, the vector level of the fp32 ops, the
 * int8 head's kernel and the backend's description. Without TRIT_CPU (the program run by hand) the
 * best family this machine runs is expected.
 *
 *   ctest --test-dir build -R test_cpu_dispatch --output-on-failure
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu_features.h"
#include "cpu/head_int8.h"
#include "cpu/kernels.h"
#include "support.h"
#include "trit.h"

/* The family this process should run: TRIT_CPU's, else the best. */
static enum trit_cpu_isa expected_family(void) {
    const char *name = getenv("TRIT_CPU");
    if (!name || !*name) return trit_cpu_isa_best();
    enum trit_cpu_isa isa = TRIT_CPU_ISA_COUNT;
    cr_assert_eq(trit_cpu_isa_parse(name, &isa), TRIT_OK, "TRIT_CPU=%s", name);
    return isa;
}

static enum trit_head_i8_kernel head_kernel_of(enum trit_cpu_isa isa) {
    switch (trit_cpu_isa_vec(isa)) {
    case TRIT_CPU_VEC_AVX512: return TRIT_HEAD_I8_VNNI;
    case TRIT_CPU_VEC_AVX2: return TRIT_HEAD_I8_AVX2;
    default: return TRIT_HEAD_I8_SCALAR;
    }
}

Test(cpu_dispatch, every_dispatcher_follows_the_forced_family) {
    const enum trit_cpu_isa want = expected_family();
    cr_log_info("family: %s (best here: %s)", trit_cpu_isa_name(want), trit_cpu_isa_name(trit_cpu_isa_best()));
    cr_assert(trit_cpu_isa_supported(want)); /* else support.c skipped the program */
    cr_assert_eq(trit_cpu_isa_active(), want);
    cr_expect_str_eq(trit_cpu_kernel_name(), trit_cpu_isa_name(want));
    cr_expect_eq(trit_cpu_vec_active(), trit_cpu_isa_vec(want));

    /* the ternary kernels: a packed matrix runs the active family */
    uint8_t codes[4] = {0x19, 0x62, 0x00, 0xAA}; /* 2 rows x 8 columns, codes 0..2 */
    struct trit_ternary w = {.n_rows = 2, .n_cols = 8, .row_bytes = 2, .codes = codes, .scale = 1.0f,
                             .scale_kind = TRIT_SCALE_MUL};
    struct trit_cpu_matrix pm;
    cr_assert_eq(trit_cpu_matrix_pack(&w, &pm), TRIT_OK, "%s", trit_last_error());
    cr_expect_eq(pm.isa, want);
    trit_cpu_matrix_free(&pm);

    /* the int8 head's AUTO kernel */
    const float rows[2 * 3] = {0.5f, -1.0f, 0.25f, 2.0f, 0.0f, -0.5f};
    const struct trit_dense head = {.dtype = TRIT_DTYPE_F32, .n_rows = 2, .n_cols = 3, .data = rows};
    struct trit_head_i8 h;
    cr_assert_eq(trit_head_i8_init(&head, 1, TRIT_HEAD_I8_AUTO, NULL, &h), TRIT_OK, "%s", trit_last_error());
    cr_expect_eq(h.kernel, head_kernel_of(want), "int8 head kernel %s", trit_head_i8_kernel_name(h.kernel));
    trit_head_i8_free(&h);

    /* the backend says which family it runs */
    trit_model *model = NULL;
    cr_assert_eq(trit_model_load("synthetic:tiny", NULL, &model), TRIT_OK, "%s", trit_last_error());
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_threads = 1;
    cp.n_ctx = 16;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(model, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    char want_desc[64];
    snprintf(want_desc, sizeof want_desc, "CPU %s,", trit_cpu_isa_name(want));
    cr_expect(strncmp(trit_context_device_desc(ctx), want_desc, strlen(want_desc)) == 0, "device: %s",
              trit_context_device_desc(ctx));
    trit_context_free(ctx);
    trit_model_free(model);
}

Test(cpu_dispatch, families_this_machine_cannot_run_are_refused) {
    const enum trit_cpu_isa active = trit_cpu_isa_active();
    for (int i = 0; i < TRIT_CPU_ISA_COUNT; i++) {
        const enum trit_cpu_isa isa = (enum trit_cpu_isa)i;
        if (trit_cpu_isa_supported(isa)) {
            cr_expect_eq(trit_cpu_isa_set_active(isa), TRIT_OK, "%s", trit_cpu_isa_name(isa));
            cr_expect_eq(trit_cpu_isa_active(), isa);
        } else {
            cr_expect_eq(trit_cpu_isa_set_active(isa), TRIT_ERR_UNSUPPORTED, "%s", trit_cpu_isa_name(isa));
            cr_expect_eq(trit_cpu_isa_active(), active, "a refused family changed the active one");
        }
        cr_assert_eq(trit_cpu_isa_set_active(active), TRIT_OK);
    }
    cr_expect_eq(trit_cpu_isa_set_active((enum trit_cpu_isa)99), TRIT_ERR_UNSUPPORTED);
}

/* The families are nested: a CPU that runs one runs every family below it, and the AVX2 family
 * needs FMA and F16C besides AVX2 (its fp32 code uses both). */
Test(cpu_dispatch, family_requirements) {
    const struct trit_cpu_features *f = trit_cpu_features_get();
    cr_expect(trit_cpu_isa_supported(TRIT_CPU_ISA_SCALAR));
    cr_expect(!trit_cpu_isa_supported(TRIT_CPU_ISA_AVX2) || (f->avx2 && f->fma && f->f16c));
    cr_expect(!trit_cpu_isa_supported(TRIT_CPU_ISA_AVX512_VNNI) || trit_cpu_isa_supported(TRIT_CPU_ISA_AVX2));
    cr_expect(!trit_cpu_isa_supported(TRIT_CPU_ISA_AMX) || trit_cpu_isa_supported(TRIT_CPU_ISA_AVX512_VNNI));
    cr_expect(!trit_cpu_isa_supported(TRIT_CPU_ISA_NEON_DOTPROD) || trit_cpu_isa_supported(TRIT_CPU_ISA_NEON));
    cr_expect(trit_cpu_isa_supported(trit_cpu_isa_best()));
}
