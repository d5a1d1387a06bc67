/*
 * libbackend: the umbrella header. Includes every module's public header.
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_BACKEND_H
#define BACKEND_BACKEND_H

#include <backend/core.h>
#include <backend/log.h>
#include <backend/metrics.h>
#include <backend/workers.h>
#include <backend/resilience.h>
#include <backend/schema.h>
#include <backend/auth.h>
#include <backend/db.h>
#include <backend/cache.h>
#include <backend/upstream.h>
#include <backend/jobs.h>
#include <backend/saga.h>
#include <backend/http.h>

#endif /* BACKEND_BACKEND_H */
