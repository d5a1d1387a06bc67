/* A gate for tests: code under test (a job, a handler, a health check) stops at it
 * until the test opens it, and the test can wait until a number of callers have
 * arrived. So tests order threads by waiting on events, never by sleeping.
 * SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_GATE_H
#define BK_TESTS_GATE_H

#include <pthread.h>
#include <stdbool.h>

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int gate_arrived; /* callers that reached the gate since the last reset */

/* Closes the gate and forgets who arrived. */
static inline void gate_reset(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = false;
    gate_arrived = 0;
    pthread_mutex_unlock(&gate_mu);
}

/* Called by the code under test: counts itself, then waits until the gate opens. */
static inline void gate_pass(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_arrived++;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

/* Waits until n callers have arrived at the gate since the last reset. */
static inline void gate_wait_for(int n)
{
    pthread_mutex_lock(&gate_mu);
    while (gate_arrived < n)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

/* Opens the gate: every caller waiting goes on, later ones pass straight through. */
static inline void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

#endif
