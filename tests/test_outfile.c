// labels: unit
/*
 * test_outfile.c: output files (trit_out_*, host/core/file.c) and `trit convert`'s use of them.
 *
 *   - a new file and a replaced one appear whole, with no temporary left beside them; a replaced
 *     file keeps its permission bits;
 *   - a folder, a character device, a FIFO, a socket, an empty name and a trailing slash are refused,
 *     naming the path and what it is, and nothing is created;
 *   - a symbolic link is followed to its final target, which is replaced while the link is kept; a
 *     link to a device and a dangling link are refused;
 *   - a failed write (RLIMIT_FSIZE: the file-size limit fails write() with EFBIG, as a full disk
 *     fails it with ENOSPC) and an abort leave the old file as it was;
 *   - a target that turns into a FIFO while the file is written is not replaced;
 *   - trit_convert refuses an unwritable output before it reads the source, keeps the old output
 *     when the write fails, and refuses a tokenizer with more tokens than the model's n_vocab (and
 *     takes one with fewer, or as many: Llama 3's 128256 into a model of that many rows).
 *
 * tests/tiny_model.c is linked in by tests/ctest_tools.cmake.
 *
 *   ctest --test-dir build -R test_outfile --output-on-failure
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "model/convert.h"
#include "support.h"
#include "tiny_model.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* Entries of `dir` (without . and ..) whose names contain "partial". */
static int n_partial(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, "partial") != NULL;
    closedir(d);
    return n;
}

static int n_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The whole file as a string (at most 255 bytes). */
static const char *get(const char *path) {
    static char buf[256];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void expect_message(const char *needle) {
    cr_assert_not_null(strstr(trit_last_error(), needle), "message '%s' lacks '%s'", trit_last_error(), needle);
}

static void write_ok(const char *path, const char *text) {
    struct trit_out out;
    cr_assert_eq(trit_out_open(path, &out), TRIT_OK, "%s: %s", path, trit_last_error());
    cr_assert_eq(trit_out_write(&out, text, strlen(text)), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_out_commit(&out), TRIT_OK, "%s", trit_last_error());
    cr_assert_null(out.tmp);
}

/* trit_out_open(path) fails with `status` and a message holding `what`; nothing new in test_tmp_dir(). */
static void refused(const char *path, enum trit_status status, const char *what) {
    const int before = n_entries(test_tmp_dir());
    struct trit_out out;
    cr_assert_eq(trit_out_open(path, &out), status, "%s: %s", path, trit_last_error());
    expect_message(path);
    expect_message(what);
    cr_assert_null(out.tmp);
    trit_out_abort(&out); /* harmless after a failed open */
    cr_assert_eq(n_entries(test_tmp_dir()), before);
}

TestSuite(outfile, .init = test_tmp_make, .fini = test_tmp_remove);

/* ---- new and replaced files ---------------------------------------------------------------- */

Test(outfile, a_new_file_appears_whole_with_no_temporary_left) {
    const char *p = test_tmp_path("new.bin");
    struct trit_out out;
    cr_assert_eq(trit_out_open(p, &out), TRIT_OK, "%s", trit_last_error());
    /* until the commit, the name does not exist and the temporary sits beside it */
    cr_assert_neq(access(p, F_OK), 0);
    cr_assert_eq(n_partial(test_tmp_dir()), 1);
    cr_assert_eq(strncmp(out.tmp, p, strlen(p)), 0, "%s", out.tmp);
    cr_assert_eq(trit_out_write(&out, "hello", 5), TRIT_OK);
    cr_assert_eq(trit_out_commit(&out), TRIT_OK, "%s", trit_last_error());
    cr_assert_str_eq(get(p), "hello");
    cr_assert_eq(n_partial(test_tmp_dir()), 0);
    cr_assert_eq(n_entries(test_tmp_dir()), 1);
    trit_out_abort(&out); /* harmless after a commit */
    cr_assert_str_eq(get(p), "hello");
}

Test(outfile, a_replaced_file_keeps_its_permission_bits) {
    const char *p = test_tmp_path("old.bin");
    put(p, "old contents");
    cr_assert_eq(chmod(p, 0640), 0);
    write_ok(p, "new");
    cr_assert_str_eq(get(p), "new");
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0640);
    cr_assert_eq(n_entries(test_tmp_dir()), 1);
}

Test(outfile, abort_leaves_the_old_file_and_no_temporary) {
    const char *p = test_tmp_path("keep.bin");
    put(p, "old");
    struct trit_out out;
    cr_assert_eq(trit_out_open(p, &out), TRIT_OK);
    cr_assert_eq(trit_out_write(&out, "new!", 4), TRIT_OK);
    trit_out_abort(&out);
    trit_out_abort(&out); /* twice is harmless */
    cr_assert_str_eq(get(p), "old");
    cr_assert_eq(n_entries(test_tmp_dir()), 1);
    struct trit_out zero = {0};
    trit_out_abort(&zero); /* a zeroed one too: fd 0 is not closed */
    cr_assert_neq(fcntl(0, F_GETFD), -1);
}

/* ---- what is refused ------------------------------------------------------------------------ */

Test(outfile, refuses_a_folder_a_device_a_fifo_and_a_socket) {
    refused(test_tmp_dir(), TRIT_ERR_INVALID_ARG, "is a folder, not a regular file");
    refused("/dev/null", TRIT_ERR_INVALID_ARG, "is a character device, not a regular file");
    const char *fifo = test_tmp_path("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    refused(fifo, TRIT_ERR_INVALID_ARG, "is a FIFO (named pipe), not a regular file");
    const char *sock = test_tmp_path("sock");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock);
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    refused(sock, TRIT_ERR_INVALID_ARG, "is a socket, not a regular file");
    close(fd);
}

Test(outfile, refuses_an_empty_name_a_trailing_slash_and_a_missing_folder) {
    struct trit_out out;
    cr_assert_eq(trit_out_open("", &out), TRIT_ERR_INVALID_ARG);
    expect_message("empty file name");
    refused(test_tmp_path("x/"), TRIT_ERR_INVALID_ARG, "is a folder name, not a file name");
    refused(test_tmp_path("no-such-folder/out.bin"), TRIT_ERR_NOT_FOUND, "No such file or directory");
}

/* ---- symbolic links ------------------------------------------------------------------------ */

Test(outfile, a_link_is_followed_to_its_final_target_and_kept) {
    const char *real = test_tmp_path("real.bin");
    put(real, "old");
    const char *mid = test_tmp_path("mid"), *top = test_tmp_path("top");
    cr_assert_eq(symlink("real.bin", mid), 0);
    cr_assert_eq(symlink("mid", top), 0);
    write_ok(top, "through two links");
    cr_assert_str_eq(get(real), "through two links");
    struct stat sb;
    cr_assert_eq(lstat(top, &sb), 0);
    cr_assert(S_ISLNK(sb.st_mode));
    cr_assert_eq(lstat(mid, &sb), 0);
    cr_assert(S_ISLNK(sb.st_mode));
    cr_assert_eq(n_partial(test_tmp_dir()), 0);
}

/* The input a command reads is never its output: the same file by name, through a link, or a file
 * inside an input folder; another file is fine. The refused output is aborted, the input intact. */
Test(outfile, an_output_that_would_replace_the_input_is_refused) {
    const char *model = test_tmp_path("model.gguf"), *link = test_tmp_path("link.gguf");
    put(model, "weights");
    cr_assert_eq(symlink("model.gguf", link), 0);
    const char *const clashing[] = {model, link};
    for (size_t i = 0; i < 2; i++) {
        struct trit_out out;
        cr_assert_eq(trit_out_open(clashing[i], &out), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_out_check_input(&out, model), TRIT_ERR_INVALID_ARG, "%s", clashing[i]);
        expect_message("which this command reads");
        cr_assert_null(out.tmp);
    }
    struct trit_out out;
    cr_assert_eq(trit_out_open(test_tmp_path("inside.npy"), &out), TRIT_OK);
    cr_assert_eq(trit_out_check_input(&out, test_tmp_dir()), TRIT_ERR_INVALID_ARG);
    expect_message("a file in ");
    cr_assert_eq(trit_out_open(test_tmp_path("other.npy"), &out), TRIT_OK);
    cr_assert_eq(trit_out_check_input(&out, model), TRIT_OK);
    cr_assert_eq(trit_out_commit(&out), TRIT_OK);
    cr_assert_str_eq(get(model), "weights");
    cr_assert_eq(n_partial(test_tmp_dir()), 0);
}

/* A name of 250 bytes is legal (NAME_MAX 255) though "<name>.<8 hex>.partial" is not: the temporary
 * then takes a short name of its own in the same folder. */
Test(outfile, a_name_too_long_for_the_usual_temporary_is_written) {
    char name[251];
    memset(name, 'n', 250);
    name[250] = '\0';
    write_ok(test_tmp_path(name), "long");
    cr_assert_str_eq(get(test_tmp_path(name)), "long");
    cr_assert_eq(n_entries(test_tmp_dir()), 1);
}

Test(outfile, refuses_a_link_to_a_device_and_a_dangling_link) {
    const char *to_null = test_tmp_path("to-null");
    cr_assert_eq(symlink("/dev/null", to_null), 0);
    refused(to_null, TRIT_ERR_INVALID_ARG, "is a symbolic link to /dev/null, which is a character device, not a regular file");
    const char *dangling = test_tmp_path("dangling");
    cr_assert_eq(symlink("nowhere.bin", dangling), 0);
    refused(dangling, TRIT_ERR_INVALID_ARG, "is a symbolic link to nowhere.bin, which does not exist");
    cr_assert_neq(access(test_tmp_path("nowhere.bin"), F_OK), 0);
}

/* ---- failures while writing ---------------------------------------------------------------- */

/* Files may grow to `bytes`: beyond it write() fails with EFBIG (SIGXFSZ ignored), the same path
 * through trit_out_write as ENOSPC on a full disk. Criterion runs each test in its own process. */
static void limit_file_size(rlim_t bytes) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

Test(outfile, a_failed_write_keeps_the_old_file) {
    const char *p = test_tmp_path("full.bin");
    put(p, "old");
    limit_file_size(4096);
    static char big[8192];
    memset(big, 'x', sizeof big);
    struct trit_out out;
    cr_assert_eq(trit_out_open(p, &out), TRIT_OK);
    cr_assert_eq(trit_out_write(&out, big, sizeof big), TRIT_ERR_IO);
    expect_message(p);
    expect_message("cannot write: File too large");
    trit_out_abort(&out);
    cr_assert_str_eq(get(p), "old");
    cr_assert_eq(n_entries(test_tmp_dir()), 1);
}

Test(outfile, a_target_that_became_a_fifo_is_not_replaced) {
    const char *p = test_tmp_path("turns.bin");
    struct trit_out out;
    cr_assert_eq(trit_out_open(p, &out), TRIT_OK);
    cr_assert_eq(trit_out_write(&out, "data", 4), TRIT_OK);
    cr_assert_eq(mkfifo(p, 0600), 0);
    cr_assert_eq(trit_out_commit(&out), TRIT_ERR_INVALID_ARG);
    expect_message("became a FIFO (named pipe)");
    cr_assert_null(out.tmp);
    struct stat sb;
    cr_assert_eq(lstat(p, &sb), 0);
    cr_assert(S_ISFIFO(sb.st_mode));
    cr_assert_eq(n_entries(test_tmp_dir()), 1);
}

/* ---- trit_convert --------------------------------------------------------------------------- */

static void make_hf_dim(const char *dir, int64_t n_vocab, int64_t dim) {
    struct tiny_model m;
    cr_assert(tiny_model_init(&m, TINY_HF_AUTOBITLINEAR, dim, 2 * dim, 1, 7));
    m.n_vocab = n_vocab; /* the embedding's rows; the tokenizer keeps its 264 tokens */
    cr_assert(tiny_write_hf(&m, dir, true), "writing %s", dir);
    tiny_model_free(&m);
}
static void make_hf(const char *dir, int64_t n_vocab) { make_hf_dim(dir, n_vocab, 256); }

Test(outfile, convert_refuses_the_output_before_reading_the_source) {
    /* the source does not exist: the error is the output's, so the output was looked at first */
    cr_assert_eq(trit_convert(test_tmp_path("no-such-model"), "/dev/null", NULL, NULL), TRIT_ERR_INVALID_ARG);
    expect_message("convert: output /dev/null: is a character device, not a regular file");
    cr_assert_eq(trit_convert(test_tmp_path("no-such-model"), test_tmp_dir(), NULL, NULL), TRIT_ERR_INVALID_ARG);
    expect_message("is a folder, not a regular file");
}

Test(outfile, convert_keeps_the_old_output_when_the_write_fails) {
    const char *hf = test_tmp_path("hf");
    make_hf(hf, 264);
    const char *dst = test_tmp_path("out.gguf");
    put(dst, "old");
    limit_file_size(64 * 1024); /* the GGUF is about 0.4 MB */
    cr_assert_eq(trit_convert(hf, dst, NULL, NULL), TRIT_ERR_IO);
    expect_message("File too large");
    cr_assert_str_eq(get(dst), "old");
    cr_assert_eq(n_partial(test_tmp_dir()), 0);
}

Test(outfile, convert_refuses_a_tokenizer_larger_than_the_vocabulary) {
    const char *hf = test_tmp_path("hf");
    make_hf(hf, 264);
    const char *dst = test_tmp_path("out.gguf");
    struct trit_convert_params p = trit_convert_default_params();
    p.tokenizer = test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf");
    cr_assert_eq(trit_convert(hf, dst, &p, NULL), TRIT_ERR_FORMAT);
    expect_message("has 32000 tokens, more than the model's vocabulary of 264");
    cr_assert_neq(access(dst, F_OK), 0);
    cr_assert_eq(n_partial(test_tmp_dir()), 0);
}

Test(outfile, convert_accepts_a_tokenizer_smaller_than_the_vocabulary) {
    /* 320 embedding rows, 264 tokens: a padded embedding, as real models have */
    const char *hf = test_tmp_path("hf");
    make_hf(hf, 320);
    struct trit_convert_report r;
    cr_assert_eq(trit_convert(hf, test_tmp_path("out.gguf"), NULL, &r), TRIT_OK, "%s", trit_last_error());
    cr_assert(r.has_tokenizer && r.checked);
}

/* A real vocabulary (Llama 3's tokenizer.json, 128256 tokens) into a model with as many embedding
 * rows (dim 64 keeps the embedding at 16 MB): the tokenizer.json -> GGUF keys path, which convert's
 * check compares with the folder's tokenizer token by token and on its probe texts. The CLI round
 * trip (ctest_tools.cmake) gives this vocabulary to a 264-row model, where it must be refused. */
Test(outfile, convert_takes_a_real_vocabulary_into_a_model_that_holds_it) {
    const char *hf = test_tmp_path("hf");
    make_hf_dim(hf, 128256, 64);
    char llama3[512];
    snprintf(llama3, sizeof llama3, "%s", test_data_path("tokenizers/llama3"));
    struct trit_convert_params p = trit_convert_default_params();
    p.tokenizer = llama3;
    struct trit_convert_report r;
    cr_assert_eq(trit_convert(hf, test_tmp_path("out.gguf"), &p, &r), TRIT_OK, "%s", trit_last_error());
    cr_assert(r.has_tokenizer && r.checked);
}
