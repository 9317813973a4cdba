/* default_model.h: the shipped model and its recorded answers, shared by the CPU, CUDA and
 * tensor-parallel oracle tests (test_default_model*.c). */
#ifndef TRIT_TEST_DEFAULT_MODEL_H
#define TRIT_TEST_DEFAULT_MODEL_H

#include <stdint.h>

#include "trit.h"

#define DEFAULT_MODEL_PATH TRIT_SOURCE_DIR "/models/trit-kjv-4m.gguf"
#define DEFAULT_MODEL_N_CTX 256

/* transformers fp32 (tools/train/evaluate.py) on tests/data/default-model/val_excerpt.txt, llama.cpp's
 * protocol at n_ctx 256: 34 chunks, 4318 scored tokens (tests/data/default-model/trainer_eval.json). */
#define DEFAULT_MODEL_HF_MEAN_NLL 3.5262661224960996
#define DEFAULT_MODEL_HF_PPL 33.99679047941306

/* Greedy continuation of "In the beginning" ([BOS 4093, 1135, 258, 2088]) by transformers fp32:
 * tests/data/default-model/golden.json, with the top1 - top2 margin of every step. */
#define DEFAULT_MODEL_N_GOLDEN 32
static const int32_t default_model_prompt[4] = {4093, 1135, 258, 2088};
static const int32_t default_model_golden[DEFAULT_MODEL_N_GOLDEN] = {
    268, 258, 621, 11, 267, 258, 342, 462, 1203, 321, 373, 11, 267, 258, 342, 387,
    268, 432, 11, 267, 258, 342, 387, 268, 432, 11, 267, 258, 342, 387, 268, 432};
static const float default_model_golden_margin[DEFAULT_MODEL_N_GOLDEN] = {
    1.635f, 2.7967f, 0.1928f, 0.8452f, 1.7514f, 0.585f, 0.1856f, 0.1841f, 0.6094f, 0.9097f, 0.3149f,
    0.2809f, 0.4913f, 0.6726f, 1.0519f, 0.2144f, 4.4505f, 0.4206f, 0.7265f, 0.8018f, 1.3502f, 0.4205f,
    0.0367f, 4.7404f, 2.2709f, 0.8612f, 0.5643f, 0.7621f, 0.6052f, 0.0132f, 4.4357f, 2.2748f};

#endif
