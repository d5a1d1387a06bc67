/* Request-scoped logging: a handler's line carries the ids of its request,
 * so that it joins the access line (and the other services' lines of the
 * same trace).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>

#include "http/http_int.h"

void bk_req_log(const bk_req_t *req, bk_log_t *log, bk_log_level_t level, json_t *fields, const char *fmt, ...)
{
    if (log == NULL && req != NULL)
        log = req->srv->o.log;
    if (req == NULL || !bk_log_enabled(log, level) || (fields != NULL && !json_is_object(fields))) {
        json_decref(fields); /* taken, as bk_log takes it */
        return;
    }
    json_t *f = fields ? fields : json_object();
    if (f != NULL) {
        /* The request's own: a field of the caller's of the same name gives way. */
        json_object_set_new(f, "request_id", json_string(req->id));
        json_object_set_new(f, "trace_id", json_string(req->trace.trace_id));
        json_object_set_new(f, "span_id", json_string(req->trace.span_id));
        if (req->label != NULL)
            json_object_set_new(f, "route", json_string(req->label->template));
    }
    va_list ap;
    va_start(ap, fmt);
    bk_logv(log, level, f, fmt, ap);
    va_end(ap);
}
