/* The libzmq baseline for bench/: a REP server that answers every request with a
 * fixed reply of REPLY_BYTES bytes (the size of a GetCase answer), doing no other work.
 *
 *   echo_server ENDPOINT REPLY_BYTES
 *
 * Binds ENDPOINT (port * = any free port), prints "echo ready rpc=ENDPOINT" on stdout,
 * serves until SIGTERM/SIGINT. The client is aftersales-bench (the same REQ code and the
 * same request bytes as for the daemon), so the only difference measured is the server.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static volatile sig_atomic_t stopping = 0;
static void on_signal(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ENDPOINT REPLY_BYTES\n", argv[0]);
        return 2;
    }
    size_t reply_bytes = (size_t)strtoul(argv[2], NULL, 10);
    char *reply = malloc(reply_bytes ? reply_bytes : 1);
    memset(reply, 0x5a, reply_bytes);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    void *ctx = zmq_ctx_new();
    void *rep = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(rep, argv[1]) != 0) {
        fprintf(stderr, "bind %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
        return 1;
    }
    char endpoint[256];
    size_t len = sizeof endpoint;
    zmq_getsockopt(rep, ZMQ_LAST_ENDPOINT, endpoint, &len);
    printf("echo ready rpc=%s\n", endpoint);
    fflush(stdout);

    zmq_msg_t msg;
    unsigned long served = 0;
    while (!stopping) {
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, rep, 0) < 0) {
            zmq_msg_close(&msg);
            if (zmq_errno() == EINTR) continue;
            fprintf(stderr, "recv: %s\n", zmq_strerror(zmq_errno()));
            break;
        }
        /* Drain any further parts (a request is one part; be tolerant). */
        while (zmq_msg_more(&msg)) {
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
            zmq_msg_recv(&msg, rep, 0);
        }
        zmq_msg_close(&msg);
        while (zmq_send(rep, reply, reply_bytes, 0) < 0 && zmq_errno() == EINTR && !stopping) {}
        served++;
    }
    fprintf(stderr, "echo: served %lu\n", served);
    zmq_close(rep);
    zmq_ctx_term(ctx);
    free(reply);
    return 0;
}
