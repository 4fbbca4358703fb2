// Scheduler signals: SIGTERM and SIGUSR1 ask the run to stop at the next step boundary.
#include "qkernels.h"
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t qk_stop_signal = 0;

static void qk_on_stop(int sig) { qk_stop_signal = sig; }

void qk_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = qk_on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    // A file-size limit must fail the write (EFBIG), not kill the process mid-checkpoint.
    signal(SIGXFSZ, SIG_IGN);
}

int qk_stop_requested(void) { return (int)qk_stop_signal; }

void qk_clear_stop(void) { qk_stop_signal = 0; }
