/*
 * The last flush. When nginx stops, or the old workers of a binary upgrade
 * exit, the presence zone dies with its master, and with it every beat
 * answered 204 and not yet acknowledged. The worker's link was closed with
 * its idle connections when the shutdown began, so each exiting worker
 * that is the zone's last owner sends what waits over a blocking
 * connection of its own, batch by batch, each settled by its ack, for at
 * most NGX_HTTP_LEVEE_HB_EXIT_MS. Workers that a reload replaced leave the
 * zone to their successors, which share it.
 */

#include "ngx_http_levee_heartbeat.h"

#include <vector>

#include "frame_codec.hpp"

using levee::presence::BatchOutcome;


/*
 * The whole last flush, connect to the last ack. Below the 1.5 s after
 * which a master told to stop fast (SIGTERM) kills its workers; with
 * leveed healthy a batch of 4,000 beats takes milliseconds.
 */
#define NGX_HTTP_LEVEE_HB_EXIT_MS  1000


typedef struct {
    int                    fd;
    ngx_msec_t             deadline;
    uint64_t               next_id;
    std::vector<uint8_t>  *in;
    const char            *error;
} ngx_http_levee_hb_exit_t;


/* Beats waiting to be sent, all workers' */
static uint64_t
ngx_http_levee_hb_waiting(void)
{
    uint64_t                        n;
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    n = ngx_http_levee_hb_table(hmcf).header().dirty;
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    return n;
}


static ngx_msec_t
ngx_http_levee_hb_exit_now(void)
{
    ngx_time_update();
    return ngx_current_msec;
}


/* Bounds the next blocking call by what is left of the deadline. */
static ngx_int_t
ngx_http_levee_hb_exit_arm(ngx_http_levee_hb_exit_t *x)
{
    ngx_msec_t      now;
    struct timeval  tv;

    now = ngx_http_levee_hb_exit_now();
    if ((ngx_msec_int_t) (x->deadline - now) <= 0) {
        x->error = "out of time";
        return NGX_ERROR;
    }

    tv.tv_sec = (x->deadline - now) / 1000;
    tv.tv_usec = ((x->deadline - now) % 1000) * 1000;

    if (setsockopt(x->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1
        || setsockopt(x->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1)
    {
        x->error = "setsockopt() failed";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_levee_hb_exit_write(ngx_http_levee_hb_exit_t *x, Levee__Frame *frame)
{
    size_t                sent;
    ssize_t               n;
    std::vector<uint8_t>  out;

    frame->request_id = ++x->next_id;

    if (!levee::encode_frame(*frame, out)) {
        x->error = "frame too large";
        return NGX_ERROR;
    }

    for (sent = 0; sent < out.size(); sent += n) {
        if (ngx_http_levee_hb_exit_arm(x) != NGX_OK) {
            return NGX_ERROR;
        }

        n = send(x->fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            x->error = "send() failed";
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* The reply to request `id`, of body `body`; NULL when none came in time. */
static levee::FramePtr
ngx_http_levee_hb_exit_read(ngx_http_levee_hb_exit_t *x, uint64_t id,
    Levee__Frame__BodyCase body)
{
    u_char              buf[4096];
    ssize_t             n;
    levee::DecodeResult  r;

    for ( ;; ) {
        r = levee::decode_frame(x->in->data(), x->in->size(), levee::kDefaultMaxFrameBytes);

        if (r.status == levee::DecodeStatus::kFrame) {
            x->in->erase(x->in->begin(), x->in->begin() + r.consumed);

            if (r.frame->request_id == id && r.frame->body_case == body) {
                return std::move(r.frame);
            }

            continue;
        }

        if (r.status != levee::DecodeStatus::kNeedMore) {
            x->error = "undecodable reply";
            return NULL;
        }

        if (ngx_http_levee_hb_exit_arm(x) != NGX_OK) {
            return NULL;
        }

        n = recv(x->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            x->error = n == 0 ? "leveed closed the connection" : "no reply in time";
            return NULL;
        }

        x->in->insert(x->in->end(), buf, buf + n);
    }
}


static BatchOutcome
ngx_http_levee_hb_exit_send(Levee__Frame *frame, void *data)
{
    levee::FramePtr            ack;
    ngx_http_levee_hb_exit_t  *x = (ngx_http_levee_hb_exit_t *) data;

    if (ngx_http_levee_hb_exit_write(x, frame) != NGX_OK) {
        return BatchOutcome::kNotSent;
    }

    ack = ngx_http_levee_hb_exit_read(x, x->next_id, LEVEE__FRAME__BODY_PRESENCE_ACK);
    if (ack == NULL) {
        return BatchOutcome::kLinkLost;
    }

    if (!ack->presence_ack->ok) {
        x->error = "leveed refused a batch";
        return BatchOutcome::kRefused;
    }

    return BatchOutcome::kAcknowledged;
}


static ngx_int_t
ngx_http_levee_hb_exit_hello(ngx_http_levee_hb_exit_t *x)
{
    Levee__Frame     frame = LEVEE__FRAME__INIT;
    Levee__Hello     hello;
    levee::FramePtr  reply;

    ngx_levee_link_hello(&hello);
    frame.body_case = LEVEE__FRAME__BODY_HELLO;
    frame.hello = &hello;

    if (ngx_http_levee_hb_exit_write(x, &frame) != NGX_OK) {
        return NGX_ERROR;
    }

    reply = ngx_http_levee_hb_exit_read(x, x->next_id, LEVEE__FRAME__BODY_HELLO_REPLY);
    if (reply == NULL) {
        return NGX_ERROR;
    }

    if (!reply->hello_reply->accepted) {
        x->error = "hello refused";
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_levee_hb_flush_on_exit(ngx_cycle_t *cycle)
{
    size_t                       len;
    uint64_t                     before, left;
    ngx_uint_t                   batches, level;
    struct sockaddr_un           sun;
    std::vector<uint8_t>         in;
    ngx_http_levee_hb_exit_t     x;
    ngx_http_levee_main_conf_t  *lmcf;

    if (!ngx_http_levee_hb_last_owner()) {
        return;
    }

    before = ngx_http_levee_hb_waiting();
    if (before == 0) {
        return;
    }

    lmcf = (ngx_http_levee_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_http_levee_module);
    if (lmcf == NULL || !lmcf->sidecar_set) {
        return;
    }

    x.fd = -1;
    x.deadline = ngx_http_levee_hb_exit_now() + NGX_HTTP_LEVEE_HB_EXIT_MS;
    x.next_id = 0;
    x.in = &in;
    x.error = NULL;
    batches = 0;

    ngx_memzero(&sun, sizeof(sun));
    sun.sun_family = AF_UNIX;
    len = ngx_strlen(lmcf->sidecar_path);
    ngx_memcpy(sun.sun_path, lmcf->sidecar_path, ngx_min(len, sizeof(sun.sun_path) - 1));

    x.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (x.fd == -1) {
        x.error = "socket() failed";

    } else if (ngx_http_levee_hb_exit_arm(&x) == NGX_OK) {
        if (connect(x.fd, (struct sockaddr *) &sun, sizeof(sun)) == -1) {
            x.error = "connect() failed";

        } else if (ngx_http_levee_hb_exit_hello(&x) == NGX_OK) {
            while (ngx_http_levee_hb_send_batch(cycle->log, ngx_http_levee_hb_exit_send, &x)
                   == NGX_OK)
            {
                batches++;
            }
        }
    }

    if (x.fd != -1) {
        close(x.fd);
    }

    left = ngx_http_levee_hb_waiting();

    level = left ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, cycle->log, 0,
                  "levee_heartbeat: exiting with nobody to take over the zone: "
                  "%uL beats waited, %ui batches acknowledged by leveed, %uL left "
                  "and lost with the zone%s%s", before, batches, left,
                  x.error ? ": " : "", x.error ? x.error : "");
}
