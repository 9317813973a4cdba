// labels: gpu
/* test_gpu_gate.c: the gpu label mechanism itself. Skips with a message on a machine without a
 * device; fails there when TRIT_REQUIRE_GPU=1; on a GPU machine it checks the device count. */
#include <criterion/criterion.h>

#include "support.h"
#include "trit.h"

Test(gpu, device_is_visible) {
    if (!test_require_gpu()) return;
    cr_assert_gt(trit_cuda_device_count(), 0);
    cr_assert_eq(trit_cuda_compiled(), 1);
}
