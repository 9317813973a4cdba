/*
 * cuda_module.c: finding and opening the CUDA backend module (cuda_module.h), and the public
 * device queries of include/trit.h on top of it.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* dladdr */
#endif
#include "cuda_module.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Atomic(const struct trit_cuda_module *) g_module; /* set once, by load_once */
static char g_why[1536]; /* why g_module is NULL */

#ifdef TRIT_CUDA_MODULE_NAME
/* Tries one path; on failure appends the loader's message to g_why. */
static void *try_open(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        const size_t used = strlen(g_why);
        const int n = snprintf(g_why + used, sizeof g_why - used, "%s%.600s", used ? "; " : "", e ? e : path);
        (void)n; /* a long message is cut: it only explains */
    }
    return h;
}

static void load_once(void) {
    void *h = NULL;
    const char *env = getenv("TRIT_CUDA_MODULE");
    if (env && *env) {
        h = try_open(env);
    } else {
        /* next to libtrit itself (the build tree, or an install's lib/) */
        Dl_info info;
        if (dladdr((const void *)&trit_cuda_module_load, &info) && info.dli_fname) {
            char path[PATH_MAX];
            const char *slash = strrchr(info.dli_fname, '/');
            if (slash && (size_t)(slash - info.dli_fname) + sizeof "/" TRIT_CUDA_MODULE_NAME < sizeof path) {
                snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname,
                         TRIT_CUDA_MODULE_NAME);
                if (access(path, F_OK) == 0) h = try_open(path);
            }
        }
        if (!h) h = try_open(TRIT_CUDA_MODULE_NAME);
    }
    if (!h) return;
    trit_cuda_module_entry_fn entry;
    *(void **)&entry = dlsym(h, TRIT_CUDA_MODULE_ENTRY); /* POSIX's way to a function pointer */
    const struct trit_cuda_module *m = entry ? entry() : NULL;
    if (!m || m->abi != TRIT_CUDA_MODULE_ABI || m->size != sizeof *m) {
        snprintf(g_why, sizeof g_why, "%s: not a CUDA module of this trit build (entry %s, ABI %u, expected %u)",
                 TRIT_CUDA_MODULE_NAME, entry ? "found" : "missing", m ? (unsigned)m->abi : 0u,
                 (unsigned)TRIT_CUDA_MODULE_ABI);
        dlclose(h);
        return;
    }
    atomic_store(&g_module, m); /* the handle stays open for the life of the process */
}
#else
static void load_once(void) { snprintf(g_why, sizeof g_why, "this trit was built without the CUDA backend"); }
#endif

const struct trit_cuda_module *trit_cuda_module_load(void) {
    pthread_once(&g_once, load_once);
    const struct trit_cuda_module *m = atomic_load(&g_module);
    if (!m) trit_error(TRIT_ERR_NO_DEVICE, "the CUDA backend module could not be loaded: %s", g_why);
    return m;
}

bool trit_cuda_module_loaded(void) { return atomic_load(&g_module) != NULL; }

/* ---- include/trit.h ----------------------------------------------------------------------------- */

int trit_cuda_compiled(void) {
#ifdef TRIT_CUDA_MODULE_NAME
    return 1;
#else
    return 0;
#endif
}

/* Whether this machine may have an NVIDIA GPU, asked of the device nodes the driver creates
 * (/dev/nvidiactl; /dev/dxg under WSL), so that a machine without one never loads the module. */
static bool device_nodes_present(void) {
    return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/dxg", F_OK) == 0;
}

int trit_cuda_device_count(void) {
    if (!trit_cuda_compiled()) return 0;
    const char *env = getenv("TRIT_CUDA_MODULE");
    if (!trit_cuda_module_loaded() && !(env && *env) && !device_nodes_present()) return 0;
    const struct trit_cuda_module *m = trit_cuda_module_load();
    if (!m) {
        static atomic_bool warned;
        if (!atomic_exchange(&warned, true)) TRIT_LOG_W("%s", trit_last_error());
        trit_error_clear();
        return 0;
    }
    return m->device_count();
}
