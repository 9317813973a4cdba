/*
 * lead.c: a leading context's messages (lead.h) over the job's host communicator.
 */
#include "tp/lead.h"

enum trit_status trit_lead_send(struct trit_comm *c, const struct trit_lead_msg *m, const struct trit_batch *b) {
    struct trit_lead_msg h = *m;
    h.magic = TRIT_LEAD_MAGIC;
    TRIT_TRY(trit_comm_broadcast_idle(c, &h, sizeof h, 0));
    if (h.op != TRIT_LEAD_BATCH) return TRIT_OK;
    const int64_t n = h.n_tokens;
    TRIT_TRY(trit_comm_broadcast(c, (void *)b->token, n * (int64_t)sizeof *b->token, 0));
    TRIT_TRY(trit_comm_broadcast(c, (void *)b->pos, n * (int64_t)sizeof *b->pos, 0));
    TRIT_TRY(trit_comm_broadcast(c, (void *)b->seq_id, n * (int64_t)sizeof *b->seq_id, 0));
    if (h.has_logits) TRIT_TRY(trit_comm_broadcast(c, (void *)b->logits, n, 0));
    return TRIT_OK;
}

enum trit_status trit_lead_receive(struct trit_comm *c, int32_t n_max, int32_t *token, int32_t *pos, int32_t *seq_id,
                                   int8_t *logits, struct trit_lead_msg *m, struct trit_batch *b) {
    TRIT_TRY(trit_comm_broadcast_idle(c, m, sizeof *m, 0));
    if (m->magic != TRIT_LEAD_MAGIC || m->op < TRIT_LEAD_QUIT || m->op > TRIT_LEAD_FORK)
        return trit_error(TRIT_ERR_COMM, "tensor parallel: rank 0 sent something that is not a step (op %d)", m->op);
    if (m->op != TRIT_LEAD_BATCH) return TRIT_OK;
    if (m->n_tokens < 1 || m->n_tokens > n_max)
        return trit_error(TRIT_ERR_COMM, "tensor parallel: rank 0 sent a batch of %d tokens (this rank takes 1..%d)",
                          m->n_tokens, n_max);
    const int64_t n = m->n_tokens;
    TRIT_TRY(trit_comm_broadcast(c, token, n * (int64_t)sizeof *token, 0));
    TRIT_TRY(trit_comm_broadcast(c, pos, n * (int64_t)sizeof *pos, 0));
    TRIT_TRY(trit_comm_broadcast(c, seq_id, n * (int64_t)sizeof *seq_id, 0));
    if (m->has_logits) TRIT_TRY(trit_comm_broadcast(c, logits, n, 0));
    *b = (struct trit_batch){.n_tokens = m->n_tokens, .token = token, .pos = pos, .seq_id = seq_id,
                             .logits = m->has_logits ? logits : NULL};
    return TRIT_OK;
}
