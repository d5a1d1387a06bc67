#!/usr/bin/env bash
# backendd end to end: the daemon on the harness's PostgreSQL (a database of its
# own) and memcached, spoken to over HTTP: configuration refused with its line,
# four instances migrating at once, readiness, the auth flow (422 listing every
# field, 409, 401 alike for an unknown email and a wrong password, refresh
# single-use with reuse revoking the family, logout, the login limit, a hash of
# older Argon2 parameters replaced), RBAC (401, 403), the accounts for an admin,
# the catalogue (create, ETag, 304, If-Match and 412, invalidation seen at once,
# delete, pages with Link, search, 422), the OpenAPI document, the metrics, key
# rotation by SIGHUP and the JWK Set, and a graceful stop. BK_TEST_WRAPPER (the
# valgrind pass sets it) runs the daemon under that command; its exit status
# must be 0.
set -euo pipefail
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
daemon_setup

# ---------------------------------------------------------------- a bad configuration
cat >"$work/bad.conf" <<EOF
# refused, every line named
listen = 127.0.0.1
access_token_ttl = 15
database_url = postgresql://app:s3cret@localhost/db
colour = blue
EOF
rc=0
"$bin" -c "$work/bad.conf" --check-config >"$work/check.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--check-config of a bad file exited $rc"
grep -qx "$work/bad.conf:2: listen: \"127.0.0.1\" is not host:port (\"127.0.0.1:8080\", \"\[::1\]:8080\")" "$work/check.out" ||
    fail "no line 2: $(cat "$work/check.out")"
grep -qx "$work/bad.conf:3: access_token_ttl: \"15\" is not a duration.*" "$work/check.out" || fail "no line 3"
grep -qx "$work/bad.conf:5: colour: unknown key" "$work/check.out" || fail "no line 5"
grep -qx "$work/bad.conf: jwt_key is required.*" "$work/check.out" || fail "no missing key"
! grep -q s3cret "$work/check.out" || fail "--check-config printed a secret"
rc=0
"$bin" -c "$work/bad.conf" >/dev/null 2>"$work/start.err" || rc=$?
[ "$rc" = 1 ] && grep -q "bad.conf:5: colour: unknown key" "$work/start.err" || fail "a bad file started (exit $rc)"

# ---------------------------------------------------------------- start
# A near cache: product hits are answered on the event loop, the rest on a worker
# (a write through this instance still empties it at once).
daemon_conf "$work/backendd.conf" "login_rate_email = 5/15m" "login_rate_address = 1000/15m" "docs = off" \
    "memcached_near_ttl = 30s"
"$bin" -c "$work/backendd.conf" --check-config >"$work/check.out" || fail "the good file: $(cat "$work/check.out")"
grep -qx "$work/backendd.conf: ok" "$work/check.out" || fail "check said $(cat "$work/check.out")"

# Four instances migrating an empty database at once: each exits 0, every
# migration is applied once.
mig=()
for i in 1 2 3 4; do
    "$bin" -c "$work/backendd.conf" --migrate-only >"$work/migrate$i.out" 2>&1 &
    mig+=($!)
done
for i in 1 2 3 4; do
    wait "${mig[$((i - 1))]}" || fail "instance $i of four migrating at once: $(cat "$work/migrate$i.out")"
done
applied=$(grep -h -o '"msg":"migrated","applied":[0-9]*' "$work"/migrate?.out | awk -F: '{ n += $NF } END { print n + 0 }')
[ "$applied" = 4 ] || fail "four instances applied $applied migrations, not 4 once each"
[ "$(psql "$dsn" -Atc 'SELECT count(*), count(DISTINCT version) FROM backendd.bk_schema_migrations')" = "4|4" ] ||
    fail "the migrations' record: $(psql "$dsn" -Atc 'SELECT version, name FROM backendd.bk_schema_migrations')"

daemon_start "$work/backendd.conf"

req GET /health/ready
expect 200 "readiness"
[ "$(jget 'j["checks"]["migrations"]')" = ok ] || fail "migrations not ready"

# ---------------------------------------------------------------- accounts
req POST /api/v1/auth/register '{"email":"Ann@Example.com","password":"correct horse battery","name":"Ann"}'
expect 201 "register"
[ "$(jget 'sorted(j)')" = "['created_at', 'email', 'id', 'name', 'role']" ] || fail "the user: $(cat "$work/body")"
[ "$(jget 'j["role"]')" = customer ] || fail "a new account's role"
ann_id=$(jget 'j["id"]')
req POST /api/v1/auth/register '{"email":"ann@EXAMPLE.com","password":"correct horse battery","name":"Ann"}'
expect 409 "the same email in another case"
req POST /api/v1/auth/register '{"email":"nope","password":"short","name":"A"}'
expect 422 "a bad registration"
[ "$(jget '[e["loc"] for e in j["errors"]]')" = "['/email', '/password', '/name']" ] || fail "422 fields: $(cat "$work/body")"
long=$(python3 -c 'print("é" * 600)')
req POST /api/v1/auth/register "{\"email\":\"l@example.com\",\"password\":\"$long\",\"name\":\"Long\"}"
expect 422 "a password over 1024 bytes"

req POST /api/v1/auth/login '{"email":"ann@example.com","password":"wrong password!"}'
expect 401 "a wrong password"
wrong=$(jget '(j["status"], j["title"], j["code"], j["detail"])')
req POST /api/v1/auth/login '{"email":"nobody@example.com","password":"wrong password!"}'
expect 401 "an unknown email"
[ "$(jget '(j["status"], j["title"], j["code"], j["detail"])')" = "$wrong" ] || fail "the two 401s differ"
req POST /api/v1/auth/login '{"email":"ANN@example.com","password":"correct horse battery"}'
expect 200 "login"
[ "$(jget '(j["token_type"], j["expires_in"])')" = "('Bearer', 900)" ] || fail "token type: $(cat "$work/body")"
access=$(jget 'j["access_token"]')
refresh1=$(jget 'j["refresh_token"]')

req GET /api/v1/users/me
expect 401 "me without a token"
header WWW-Authenticate | grep -q '^Bearer' || fail "no WWW-Authenticate"
req GET /api/v1/users/me "" "Authorization: Bearer $access"
expect 200 "me"
[ "$(jget '(j["id"], j["email"])')" = "($ann_id, 'Ann@Example.com')" ] || fail "me: $(cat "$work/body")"
req GET /api/v1/users "" "Authorization: Bearer $access"
expect 403 "a customer lists the accounts"

# Refresh: single use; a used token coming back revokes its family.
req POST /api/v1/auth/refresh "{\"refresh_token\":\"$refresh1\"}"
expect 200 "refresh"
refresh2=$(jget 'j["refresh_token"]')
[ "$refresh2" != "$refresh1" ] || fail "the same refresh token again"
req POST /api/v1/auth/refresh "{\"refresh_token\":\"$refresh1\"}"
expect 401 "a used refresh token"
req POST /api/v1/auth/refresh "{\"refresh_token\":\"$refresh2\"}"
expect 401 "the family of a reused token"
req POST /api/v1/auth/login '{"email":"ann@example.com","password":"correct horse battery"}'
refresh3=$(jget 'j["refresh_token"]')
req POST /api/v1/auth/logout "{\"refresh_token\":\"$refresh3\"}"
expect 204 "logout"
req POST /api/v1/auth/refresh "{\"refresh_token\":\"$refresh3\"}"
expect 401 "refresh after logout"

# The login limit: failures count, per email.
req POST /api/v1/auth/register '{"email":"bob@example.com","password":"another good password","name":"Bob"}'
for i in 1 2 3 4 5; do
    req POST /api/v1/auth/login '{"email":"bob@example.com","password":"not the password"}'
    expect 401 "failure $i"
done
req POST /api/v1/auth/login '{"email":"bob@example.com","password":"another good password"}'
expect 429 "the sixth attempt"
[ -n "$(header Retry-After)" ] || fail "429 without Retry-After"
req POST /api/v1/auth/login '{"email":"ann@example.com","password":"correct horse battery"}'
expect 200 "another email is not limited"

# A hash of other Argon2 parameters (argon2-cffi's, m=128 t=2) is replaced at the
# next login by one of the configured parameters (m=64 t=1).
req POST /api/v1/auth/register '{"email":"carol@example.com","password":"carol has a password","name":"Carol"}'
expect 201 "register carol"
old_hash=$(/usr/bin/python3 -I -c 'import argon2; print(argon2.PasswordHasher(time_cost=2, memory_cost=128, parallelism=1).hash("carol has a password"))')
psql "$dsn" -qc "UPDATE backendd.users SET password_hash = '$old_hash' WHERE email = 'carol@example.com'" >/dev/null
req POST /api/v1/auth/login '{"email":"carol@example.com","password":"carol has a password"}'
expect 200 "login with a hash of older parameters"
new_hash=$(psql "$dsn" -Atc "SELECT password_hash FROM backendd.users WHERE email = 'carol@example.com'")
case "$new_hash" in
'$argon2id$v=19$m=64,t=1,p=1$'*) ;;
*) fail "the hash was not replaced: $new_hash" ;;
esac
req POST /api/v1/auth/login '{"email":"carol@example.com","password":"carol has a password"}'
expect 200 "login with the new hash"

# ---------------------------------------------------------------- the catalogue
psql "$dsn" -qc "UPDATE backendd.users SET role = 'editor' WHERE id = $ann_id" >/dev/null
req POST /api/v1/auth/login '{"email":"ann@example.com","password":"correct horse battery"}'
editor=$(jget 'j["access_token"]')
req POST /api/v1/products '{"sku":"E2E-1","name":"Blue teapot","price":2500}'
expect 401 "create without a token"
req POST /api/v1/products '{"sku":"E2E-1","name":"Blue teapot","price":2500}' "Authorization: Bearer $access"
expect 403 "create as a customer"
req POST /api/v1/products '{"sku":"E2E-1","name":"Blue teapot","description":"Glazed stoneware.","price":2500,"stock":3}' \
    "Authorization: Bearer $editor"
expect 201 "create"
pid_=$(jget 'j["id"]')
[ "$(header Location)" = "/api/v1/products/$pid_" ] || fail "Location: $(header Location)"
etag=$(header ETag)
[ -n "$etag" ] || fail "no ETag"
req POST /api/v1/products '{"sku":"E2E-1","name":"Again","price":1}' "Authorization: Bearer $editor"
expect 409 "a taken sku"
req POST /api/v1/products '{"sku":"bad sku","name":"","price":-1}' "Authorization: Bearer $editor"
expect 422 "a bad product"
[ "$(jget '[e["loc"] for e in j["errors"]]')" = "['/sku', '/name', '/price']" ] || fail "422 fields: $(cat "$work/body")"

req GET "/api/v1/products/$pid_"
expect 200 "read"
[ "$(header ETag)" = "$etag" ] || fail "the ETag of a read"
req GET "/api/v1/products/$pid_" "" "If-None-Match: $etag"
expect 304 "a current copy"
req PATCH "/api/v1/products/$pid_" '{"price":2700}' "Authorization: Bearer $editor" "If-Match: $etag"
expect 200 "patch"
new_etag=$(header ETag)
[ "$new_etag" != "$etag" ] || fail "the ETag did not change"
req PATCH "/api/v1/products/$pid_" '{"price":2900}' "Authorization: Bearer $editor" "If-Match: $etag"
expect 412 "a stale If-Match"
req GET "/api/v1/products/$pid_"
[ "$(jget 'j["price"]')" = 2700 ] || fail "the cached copy was not invalidated: $(cat "$work/body")"
req PUT "/api/v1/products/$pid_" '{"sku":"E2E-1","name":"Blue teapot","price":3100}' "Authorization: Bearer $editor" \
    "If-Match: $new_etag"
expect 200 "put"
[ "$(jget '(j["price"], j["stock"], j["description"])')" = "(3100, 0, '')" ] || fail "put: $(cat "$work/body")"
for bad in abc 0x10 -1 99999999999999999999 "1%20"; do
    req GET "/api/v1/products/$bad"
    expect 404 "the id $bad"
done

for i in $(seq 1 25); do
    req POST /api/v1/products "{\"sku\":\"BULK-$i\",\"name\":\"Bulk item $i\",\"price\":$i}" "Authorization: Bearer $editor"
    expect 201 "bulk $i"
done
req GET "/api/v1/products?page=2&per_page=10"
expect 200 "page 2"
[ "$(jget '(len(j["items"]), j["total"], j["page"], j["per_page"], j["total_pages"])')" = "(10, 26, 2, 10, 3)" ] ||
    fail "page 2: $(jget 'len(j["items"]), j["total"], j["page"], j["total_pages"]')"
link=$(header Link)
for rel in first prev next last; do
    grep -q "rel=\"$rel\"" <<<"$link" || fail "no $rel link: $link"
done
grep -q '</api/v1/products?page=3&per_page=10>; rel="next"' <<<"$link" || fail "next: $link"
req GET "/api/v1/products?per_page=101"
expect 422 "per_page over 100"
[ "$(jget 'j["errors"][0]["loc"]')" = query.per_page ] || fail "the 422's loc: $(cat "$work/body")"
req GET "/api/v1/products?q=teapot"
expect 200 "search"
[ "$(jget '[p["sku"] for p in j["items"]]')" = "['E2E-1']" ] || fail "search: $(cat "$work/body")"
req DELETE "/api/v1/products/$pid_" "" "Authorization: Bearer $editor"
expect 204 "delete"
req GET "/api/v1/products/$pid_"
expect 404 "a deleted product"

# ---------------------------------------------------------------- the accounts, for an admin
psql "$dsn" -qc "UPDATE backendd.users SET role = 'admin' WHERE id = $ann_id" >/dev/null
req POST /api/v1/auth/login '{"email":"ann@example.com","password":"correct horse battery"}'
admin=$(jget 'j["access_token"]')
req GET "/api/v1/users?per_page=1&page=2" "" "Authorization: Bearer $admin"
expect 200 "the accounts' second page"
[ "$(jget '([u["email"] for u in j["items"]], j["total"], j["total_pages"])')" = "(['bob@example.com'], 3, 3)" ] ||
    fail "the accounts: $(cat "$work/body")"
bob_id=$(jget 'j["items"][0]["id"]')
req GET "/api/v1/users?page=9" "" "Authorization: Bearer $admin"
expect 200 "a page past the last"
[ "$(jget '(j["items"], j["total"], j["page"])')" = "([], 3, 9)" ] || fail "past the last page: $(cat "$work/body")"
req PATCH "/api/v1/users/$bob_id" '{"role":"editor"}' "Authorization: Bearer $admin"
expect 200 "a role changed"
[ "$(jget 'j["role"]')" = editor ] || fail "the new role: $(cat "$work/body")"
req PATCH "/api/v1/users/$bob_id" '{"role":"root"}' "Authorization: Bearer $admin"
expect 422 "a role that is none"
req PATCH "/api/v1/users/$bob_id" '{"role":"admin"}' "Authorization: Bearer $editor"
expect 403 "an editor changes a role"

# ---------------------------------------------------------------- operations
req GET /openapi.json
expect 200 "the OpenAPI document"
[ "$(jget 'j["openapi"]')" = 3.1.0 ] || fail "not OpenAPI 3.1"
[ "$(jget '"/api/v1/products/{id}" in j["paths"] and "/api/v1/auth/login" in j["paths"]')" = True ] ||
    fail "routes missing from the document"
req GET /metrics
expect 200 "metrics"
grep -q '^http_requests_total{method="POST",route="/api/v1/auth/login",status="429"} 1$' "$work/body" ||
    fail "no count of the 429"
grep -q '^ratelimit_denied_total{policy="login_email"} 1$' "$work/body" || fail "no count of the login limit's denial"
# The catalogue's reads went through the cache: its outcomes are counted.
for m in 'cache_requests_total{result="hit"}' 'cache_requests_total{result="miss"}' cache_loads_total \
    cache_coalesced_total; do
    grep -q "^$m [0-9]" "$work/body" || fail "no $m in /metrics"
done
awk '$1 == "cache_requests_total{result=\"hit\"}" && $2 > 0 { ok = 1 } END { exit !ok }' "$work/body" ||
    fail "no cache hit counted: $(grep ^cache_ "$work/body")"
grep '"route":"/api/v1/users/me"' "$work/access.log" | grep '"status":200' | grep -c "\"user\":\"$ann_id\"" >/dev/null ||
    fail "no access line of /users/me with the user: $(grep users/me "$work/access.log")"

# ---------------------------------------------------------------- key rotation (SIGHUP)
# reload: SIGHUP, then wait for the reload's own line in the log.
reload() {
    local before
    before=$(grep -c '"msg":"reloaded (SIGHUP)"' "$work/log" || true)
    kill -HUP "$pid"
    for _ in $(seq 300); do
        [ "$(grep -c '"msg":"reloaded (SIGHUP)"' "$work/log" || true)" -gt "$before" ] && return 0
        sleep 0.1
    done
    fail "no reload after SIGHUP"
}
kid_of() { python3 -c 'import base64,json,sys; h=sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h+"="*(-len(h)%4)))["kid"])' "$1"; }
req GET /.well-known/jwks.json
expect 200 "the JWK Set"
[ "$(jget 'j')" = "{'keys': []}" ] || fail "an HMAC key was published: $(cat "$work/body")"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/es.pem" 2>/dev/null
old_token=$access
[ "$(kid_of "$old_token")" = e2e ] || fail "the first kid"
printf 'jwt_key = es1 ES256 %s\njwt_signing_kid = es1\n' "$work/es.pem" >>"$work/backendd.conf"
reload
req POST /api/v1/auth/login '{"email":"ann@example.com","password":"correct horse battery"}'
expect 200 "login after the new key"
new_token=$(jget 'j["access_token"]')
[ "$(kid_of "$new_token")" = es1 ] || fail "the new key does not sign: $(kid_of "$new_token")"
req GET /api/v1/users/me "" "Authorization: Bearer $old_token"
expect 200 "a token of the old key"
req GET /api/v1/users/me "" "Authorization: Bearer $new_token"
expect 200 "a token of the new key"
req GET /.well-known/jwks.json
expect 200 "the JWK Set with the new key"
[ "$(jget '[(k["kid"], k["kty"], k["crv"], k["alg"], "d" in k) for k in j["keys"]]')" = "[('es1', 'EC', 'P-256', 'ES256', False)]" ] ||
    fail "the JWK Set: $(cat "$work/body")"
# Another service verifies the token with the published key alone (PyJWT).
/usr/bin/python3 -I -c '
import json, sys, jwt
keys = {k.key_id: k for k in jwt.PyJWKSet.from_json(open(sys.argv[1]).read()).keys}
token = sys.argv[2]
key = keys[jwt.get_unverified_header(token)["kid"]]
claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="backendd", issuer="e2e")
assert claims["sub"] == sys.argv[3], claims
' "$work/body" "$new_token" "$ann_id" || fail "PyJWT does not verify the token with the JWK Set"

# A reload that fails (a key file gone) keeps the keys as they were.
cp "$work/backendd.conf" "$work/good.conf"
printf 'jwt_key = gone ES256 %s\n' "$work/missing.pem" >>"$work/backendd.conf"
reload
grep -q '"msg":"the JWT keys were not reloaded' "$work/log" || fail "no line for the refused reload"
req GET /api/v1/users/me "" "Authorization: Bearer $old_token"
expect 200 "the old key after a refused reload"
# The old key removed: its tokens stop verifying, the new one's do not.
grep -v '^jwt_key = e2e ' "$work/good.conf" >"$work/backendd.conf"
reload
req GET /api/v1/users/me "" "Authorization: Bearer $old_token"
expect 401 "a token of a removed key"
req GET /api/v1/users/me "" "Authorization: Bearer $new_token"
expect 200 "the current key after the old one went"
! grep -q -- "-----BEGIN" "$work/log" || fail "a key in the log"

daemon_stop
grep -q '"msg":"stopping"' "$work/log" || fail "no stopping line"
echo "e2e: backendd passed every flow"
