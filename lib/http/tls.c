/* TLS on the main listener (bufferevent_openssl): one SSL_CTX made from the
 * certificate chain and key files, swapped whole on reload (connections keep
 * the context they began with: OpenSSL counts its references), TLS 1.2 at
 * least, the server's cipher order, ALPN http/1.1.
 * SPDX-License-Identifier: MIT */
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/error_int.h"
#include "http/http_int.h"

/* OpenSSL's last error, as text, into err with what was being done. */
static int ssl_error(bk_error_t *err, int code, const char *what, const char *file)
{
    char reason[256] = "";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    return bk__error(err, code, "tls: %s %s: %s", what, file, reason[0] ? reason : "failed");
}

static const unsigned char ALPN[] = "\x08http/1.1";

/* The client's list must name http/1.1; one that names only others (h2) gets
 * no ALPN answer and speaks HTTP/1.1 anyway, as most servers without h2 do. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)ssl, (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ALPN, sizeof ALPN - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(const char *cert, const char *key, bk_error_t *err)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_error(err, BK_ENOMEM, "SSL_CTX_new", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle keep-alive connections hold no buffers */
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    int rc = BK_OK;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rc = ssl_error(err, BK_EINVAL, "certificate chain", cert);
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        rc = ssl_error(err, BK_EINVAL, "private key", key);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = ssl_error(err, BK_EINVAL, "the key does not match the certificate of", cert);
    if (rc != BK_OK) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int bk__tls_init(bk_http_server_t *srv, bk_error_t *err)
{
    if (srv->o.tls_cert_file == NULL && srv->o.tls_key_file == NULL)
        return BK_OK;
    if (srv->o.tls_cert_file == NULL || srv->o.tls_key_file == NULL)
        return bk__error(err, BK_EINVAL, "tls: both tls_cert_file and tls_key_file, or neither");
    srv->tls_ctx = ctx_new(srv->o.tls_cert_file, srv->o.tls_key_file, err);
    return srv->tls_ctx ? BK_OK : err ? err->code : BK_EINVAL;
}

int bk_http_server_reload_tls(bk_http_server_t *srv, bk_error_t *err)
{
    bk__error_clear(err);
    if (srv == NULL || srv->tls_ctx == NULL)
        return bk__error(err, BK_EINVAL, "tls reload: no server, or a server without TLS");
    SSL_CTX *ctx = ctx_new(srv->o.tls_cert_file, srv->o.tls_key_file, err);
    if (ctx == NULL)
        return err ? err->code : BK_EINVAL; /* the old certificate goes on */
    pthread_mutex_lock(&srv->tls_mu);
    SSL_CTX *old = srv->tls_ctx;
    srv->tls_ctx = ctx;
    pthread_mutex_unlock(&srv->tls_mu);
    SSL_CTX_free(old); /* its connections hold references of their own */
    return BK_OK;
}

SSL *bk__tls_ssl(bk_http_server_t *srv)
{
    pthread_mutex_lock(&srv->tls_mu);
    SSL *ssl = SSL_new(srv->tls_ctx);
    pthread_mutex_unlock(&srv->tls_mu);
    return ssl;
}

void bk__tls_free(bk_http_server_t *srv)
{
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
}
