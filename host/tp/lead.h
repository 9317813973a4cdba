/*
 * lead.h: the messages of a leading context (include/trit.h, trit_tp_lead): rank 0 of an MPI job
 * decides each step and sends it; the other ranks receive it and run the same call, so that every
 * rank's sequences, pool and collectives stay in step. A message is a fixed header, sent with the
 * communicator's idle broadcast (a follower may wait for it for hours), then for a batch its arrays
 * (ordinary, bounded broadcasts: the leader sends them at once).
 */
#ifndef TRIT_TP_LEAD_H
#define TRIT_TP_LEAD_H

#include <stdint.h>

#include "tp/comm.h"
#include "trit.h"

enum trit_lead_op {
    TRIT_LEAD_QUIT = 1,  /* the leader freed its context: followers return */
    TRIT_LEAD_BATCH = 2, /* trit_decode_batch: n_tokens, has_logits, then the arrays */
    TRIT_LEAD_TRIM = 3,  /* trit_seq_trim(seq, n_keep) (trit_seq_remove is a trim to 0) */
    TRIT_LEAD_FORK = 4,  /* trit_seq_fork(seq, seq2, n_keep) */
};

struct trit_lead_msg {
    int32_t magic; /* TRIT_LEAD_MAGIC: a follower that reads anything else stops */
    int32_t op;
    int32_t n_tokens, has_logits;
    int32_t seq, seq2, n_keep;
};
#define TRIT_LEAD_MAGIC 0x7472746c /* "trtl" */

/* Rank 0: sends m (and with TRIT_LEAD_BATCH the arrays of b, which m describes). */
enum trit_status trit_lead_send(struct trit_comm *c, const struct trit_lead_msg *m, const struct trit_batch *b);
/* Every other rank: waits for the next message. With TRIT_LEAD_BATCH it checks n_tokens against
 * n_max and receives the arrays into token, pos, seq_id and logits (n_max entries each) and points b
 * at them. TRIT_ERR_COMM for a header that is not a message. */
enum trit_status trit_lead_receive(struct trit_comm *c, int32_t n_max, int32_t *token, int32_t *pos, int32_t *seq_id,
                                   int8_t *logits, struct trit_lead_msg *m, struct trit_batch *b);

#endif /* TRIT_TP_LEAD_H */
