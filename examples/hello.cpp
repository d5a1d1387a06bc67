/*
 * hello.cpp: libbackend from C++17. The library's handles are owned by RAII
 * wrappers (std::unique_ptr with the library's free function as the deleter),
 * failures become exceptions, and routes are lambdas, reached from C through one
 * void * trampoline. No exception crosses into the library: one that escapes a
 * handler is logged and answered 500.
 *
 *   hello_cpp [--port N] [--threads N]
 *
 *   GET /json            {"message":"Hello, World!"}
 *   GET /hello/{name}    {"hello":NAME,"count":N}, N this route's answers so far
 *   GET /throw           a handler that throws: 500 problem+json
 *
 * Port 0 picks a free port; the "listening" log line (stderr) names it. Stops
 * gracefully on SIGINT or SIGTERM. Exit status: 0 stopped, 1 it could not start
 * (the reason on stderr), 2 a usage error.
 * SPDX-License-Identifier: MIT
 */
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <backend/backend.h>

namespace bk {

// A library failure: its code (BK_E*) and what bk_error_t or bk_strerror says.
class error : public std::runtime_error {
  public:
    error(int code, const std::string &what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

  private:
    int code_;
};

// Throws unless rc is BK_OK; err, when the call filled one, says why.
inline void check(int rc, const bk_error_t *err = nullptr)
{
    if (rc != BK_OK)
        throw error(rc, err != nullptr && err->code == rc ? err->message : bk_strerror(rc));
}

// The owner of a handle: the library's free function as the deleter.
template <typename T, void (*Free)(T *)> struct deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
using log_ptr = std::unique_ptr<bk_log_t, deleter<bk_log_t, bk_log_free>>;

inline log_ptr make_log(const bk_log_opts_t *opts)
{
    bk_log_t *log = nullptr;
    bk_error_t err;
    check(bk_log_new(opts, &log, &err), &err);
    return log_ptr(log);
}

using handler = std::function<void(bk_req_t *)>;

// A server whose routes are any callables. Its handlers live as long as it does.
class server {
  public:
    // log (borrowed) gets the server's lines and the exceptions of handlers.
    server(bk_http_opts_t opts, bk_log_t *log) : log_(log)
    {
        opts.log = log;
        bk_http_server_t *s = nullptr;
        bk_error_t err;
        check(bk_http_server_new(&opts, &s, &err), &err);
        srv_.reset(s);
    }
    server(const server &) = delete;
    server &operator=(const server &) = delete;

    void route(const char *method, const char *path, handler fn)
    {
        // A std::list: the element's address, which the library keeps, never moves.
        routes_.push_back({this, std::move(fn)});
        int rc = bk_http_route(srv_.get(), method, path, trampoline, &routes_.back(), nullptr);
        if (rc != BK_OK) {
            routes_.pop_back();
            check(rc);
        }
    }
    void start()
    {
        bk_error_t err;
        check(bk_http_server_start(srv_.get(), &err), &err);
        bk_http_server_set_started(srv_.get(), true);
    }
    void wait() { bk_http_server_wait(srv_.get()); } // until SIGINT or SIGTERM

  private:
    struct route_ctx {
        server *owner;
        handler fn;
    };

    // The one C callback of every route. An exception stops here: logged, and
    // answered 500 unless the handler answered before it threw.
    static void trampoline(bk_req_t *req, void *ud) noexcept
    {
        auto *r = static_cast<route_ctx *>(ud);
        const char *what = nullptr;
        try {
            r->fn(req);
            return;
        } catch (const std::exception &e) {
            what = e.what();
            r->owner->failed(req, what);
        } catch (...) {
            r->owner->failed(req, "an exception that is not a std::exception");
        }
    }
    void failed(bk_req_t *req, const char *what) noexcept
    {
        bk_req_log(req, log_, BK_LOG_ERROR, json_pack("{s:s}", "exception", what), "a handler threw");
        if (bk_res_status(req) == 0)
            bk_res_problem(req, 500, "the handler failed", nullptr); /* what it said stays in the log */
    }

    bk_log_t *log_;
    // Declared before srv_, so destroyed after it: the server stops (its threads
    // joined) before the handlers it calls go away.
    std::list<route_ctx> routes_;
    std::unique_ptr<bk_http_server_t, deleter<bk_http_server_t, bk_http_server_free>> srv_;
};

} // namespace bk

static int usage(const char *argv0)
{
    std::fprintf(stderr, "usage: %s [--port N] [--threads N]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    bk_http_opts_t opts;
    bk_http_opts_init(&opts);
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            opts.port = static_cast<uint16_t>(std::atoi(argv[++i]));
        else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            opts.threads = static_cast<unsigned>(std::atoi(argv[++i]));
        else
            return usage(argv[0]);
    }
    try {
        bk::log_ptr log = bk::make_log(nullptr); // stderr, info
        std::atomic<long> count{0};              // the handlers run on the server's threads
        bk::server srv(opts, log.get());          // destroyed first: it outlives none of them
        srv.route("GET", "/json", [](bk_req_t *req) {
            bk_res_json(req, 200, json_pack("{s:s}", "message", "Hello, World!"));
        });
        srv.route("GET", "/hello/{name}", [&count](bk_req_t *req) {
            std::string name = bk_req_param(req, "name");
            bk_res_json(req, 200, json_pack("{s:s, s:I}", "hello", name.c_str(), "count",
                                            static_cast<json_int_t>(++count)));
        });
        srv.route("GET", "/throw", [](bk_req_t *) { throw std::logic_error("thrown on purpose"); });
        srv.start();
        srv.wait();
        bk_log(log.get(), BK_LOG_INFO, nullptr, "stopped");
    } catch (const bk::error &e) {
        std::fprintf(stderr, "hello_cpp: %s (%s)\n", e.what(), bk_err_name(e.code()));
        return 1;
    }
    return 0;
}
