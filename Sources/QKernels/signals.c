// Stop signals: SIGTERM and SIGUSR1 (schedulers) and a first SIGINT (Ctrl-C) ask the run to
// stop at the next step boundary, with a checkpoint; a second SIGINT exits at once (130), the
// previous checkpoint intact since checkpoints are written aside and renamed.
#include "qkernels.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t qk_stop_signal = 0;
static volatile sig_atomic_t qk_interrupts = 0;

static void qk_on_stop(int sig) {
    if (sig == SIGINT && ++qk_interrupts > 1) _exit(130);
    qk_stop_signal = sig;
}

void qk_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = qk_on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    // A file-size limit must fail the write (EFBIG), not kill the process mid-checkpoint.
    signal(SIGXFSZ, SIG_IGN);
}

int qk_stop_requested(void) { return (int)qk_stop_signal; }
