#!/usr/bin/env bash
# examples/jwt issues and verifies tokens: verify prints the claims as one JSON line
# and exits 0, or prints the code's name (BK_EJWT_*) and exits 1; usage errors exit 2.
# Covered: an HS256 round trip with typed --claim values, a wrong key, expiry and
# leeway (on tokens PyJWT makes with exp in the past: no sleeping), iss and aud, a key
# set whose second key the token's kid selects, RS256 with PEM keys from openssl,
# tokens that pick their own algorithm ("none", HS256 against an RSA key), and
# interoperability with PyJWT both ways.
set -euo pipefail
bin="$top_builddir/examples/jwt"
py=/usr/bin/python3
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- stdout"; cat "$work/out"
    echo "--- stderr"; cat "$work/err"
    exit 1
}
[ -x "$py" ] || { echo "FAIL: no $py (Debian's python3)"; exit 1; }
cd "$work"
: >out
: >err
"$py" -c 'import jwt' 2>err || fail "$py has no jwt module (Debian's python3-jwt)"
command -v openssl >/dev/null || fail "no openssl command (Debian's openssl)"

# run ARGS...: runs the example (the libtool wrapper, so a sanitizer build works too)
# with stdout in out, stderr in err and the exit status in $rc.
run() {
    rc=0
    "$bin" "$@" >out 2>err || rc=$?
}
expect() { # expect STATUS WHAT
    [ "$rc" = "$1" ] || fail "$2: exit status $rc, not $1"
    if [ "$1" = 2 ]; then
        grep -q '^jwt: ' err || fail "$2: no 'jwt: ...' message on stderr"
        [ ! -s out ] || fail "$2: unexpected stdout"
    else
        [ ! -s err ] || fail "$2: unexpected stderr"
        [ "$(wc -l <out)" = 1 ] || fail "$2: not one line on stdout"
    fi
}
refused() { # refused CODE WHAT: the last run refused the token with CODE
    expect 1 "$2"
    [ "$(cat out)" = "$1" ] || fail "$2: printed $(cat out), not $1"
}
# claims PYTHON-EXPR: evaluates the expression with c = the claims verify printed.
claims() {
    "$py" -c 'import json, sys; c = json.loads(open("out").read()); assert '"$1"', c' ||
        fail "claims: $1"
}
# pyjwt KEYFILE ALG CLAIMS-JSON [HEADERS-JSON]: a token PyJWT signs; "exp"/"nbf"/"iat"
# values in CLAIMS-JSON are seconds relative to now.
pyjwt() {
    "$py" - "$@" <<'EOF'
import json, sys, time, jwt
key = open(sys.argv[1], "rb").read()
claims = json.loads(sys.argv[3])
now = int(time.time())
for k in ("exp", "nbf", "iat"):
    if k in claims:
        claims[k] += now
headers = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
print(jwt.encode(claims, key, algorithm=sys.argv[2], headers=headers))
EOF
}
# handmade HEADER-JSON CLAIMS-JSON SECRET-FILE|"": a token signed with HMAC-SHA256
# over whatever bytes SECRET-FILE holds (PyJWT refuses to make the dangerous ones),
# or with an empty signature.
handmade() {
    "$py" - "$@" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
claims = json.loads(sys.argv[2])
claims.setdefault("exp", int(time.time()) + 600)
data = b64(sys.argv[1].encode()) + "." + b64(json.dumps(claims).encode())
sig = b64(hmac.new(open(sys.argv[3], "rb").read(), data.encode(), hashlib.sha256).digest()) if sys.argv[3] else ""
print(data + "." + sig)
EOF
}

head -c 32 /dev/urandom >k1
head -c 32 /dev/urandom >k2
head -c 48 /dev/urandom >k384

# ---- HS256 round trip; --claim values are JSON when they parse, else strings.
run issue --key-file k1 --alg HS256 --ttl 600 --iss https://auth.example --aud api --sub alice \
    --claim 'roles=["admin","viewer"]' --claim n=42 --claim ok=true --claim plain=hello \
    --claim 'quoted="42"' --claim 'obj={"a":1}' --claim 'half=[1' --claim empty=
expect 0 "issue HS256"
tok=$(cat out)
[[ "$tok" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "issue: not a compact JWS: $tok"
run verify --key-file k1 --alg HS256 --iss https://auth.example --aud api --require roles --require sub "$tok"
expect 0 "verify HS256"
claims 'c["iss"] == "https://auth.example" and c["aud"] == "api" and c["sub"] == "alice"'
claims 'c["exp"] - c["iat"] == 600 and abs(c["iat"] - __import__("time").time()) < 60'
claims 'isinstance(c["jti"], str) and len(c["jti"]) == 22'
claims 'c["roles"] == ["admin", "viewer"] and c["n"] == 42 and c["ok"] is True and c["plain"] == "hello"'
claims 'c["quoted"] == "42" and c["obj"] == {"a": 1} and c["half"] == "[1" and c["empty"] == ""'
"$py" -c 'import json, sys; json.loads(sys.stdin.read())' <out || fail "verify: stdout is not JSON"
# PyJWT accepts our token, and we accept PyJWT's.
"$py" -c '
import jwt, sys
c = jwt.decode(sys.argv[1], open("k1", "rb").read(), algorithms=["HS256"], audience="api", issuer="https://auth.example")
assert c["sub"] == "alice", c
' "$tok" || fail "PyJWT does not verify our HS256 token"
run verify --key-file k1 --alg HS256 --aud api "$(pyjwt k1 HS256 '{"exp": 300, "aud": "api", "x": [1]}')"
expect 0 "verify a PyJWT token"
claims 'c["x"] == [1]'

# ---- refusals: each with its own code.
run verify --key-file k2 --alg HS256 "$tok"
refused BK_EJWT_SIGNATURE "wrong key"
run verify --key-file k1 --alg HS256 --iss https://other.example "$tok"
refused BK_EJWT_ISSUER "iss mismatch"
run verify --key-file k1 --alg HS256 --aud other "$tok"
refused BK_EJWT_AUDIENCE "aud mismatch"
run verify --key-file k1 --alg HS256 --require tenant "$tok"
refused BK_EJWT_CLAIMS "required claim missing"
run verify --key-file k384 --alg HS384 "$tok"
refused BK_EJWT_ALGORITHM "HS256 token, HS384 key"
run verify --key-file k1 --alg HS256 "${tok}="
refused BK_EJWT_MALFORMED "padded base64url signature"
run verify --key-file k1 --alg HS256 "${tok%%.*}.${tok#*.}.x"
refused BK_EJWT_MALFORMED "four segments"
# A payload altered after signing: the signature no longer matches.
payload=$("$py" -c '
import base64, sys
p = sys.argv[1].split(".")[1]
d = base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).replace(b"alice", b"admin")
print(base64.urlsafe_b64encode(d).rstrip(b"=").decode())' "$tok")
run verify --key-file k1 --alg HS256 "${tok%%.*}.$payload.${tok##*.}"
refused BK_EJWT_SIGNATURE "altered payload"

# ---- time: exp in the past (PyJWT-made, no sleeping), leeway, nbf in the future.
expired=$(pyjwt k1 HS256 '{"exp": -100, "iat": -700, "sub": "bob"}')
run verify --key-file k1 --alg HS256 "$expired"
refused BK_EJWT_EXPIRED "expired 100 s ago"
run verify --key-file k1 --alg HS256 --leeway 30 "$expired"
refused BK_EJWT_EXPIRED "expired 100 s ago, 30 s leeway"
run verify --key-file k1 --alg HS256 --leeway 3600 "$expired"
expect 0 "expired 100 s ago, 1 h leeway"
claims 'c["sub"] == "bob"'
run issue --key-file k1 --alg HS256 --ttl 1
expect 0 "issue --ttl 1"
short=$(cat out)
run verify --key-file k1 --alg HS256 --leeway 60 "$short"
expect 0 "--ttl 1 token with 60 s leeway"
claims 'c["exp"] - c["iat"] == 1'
early=$(pyjwt k1 HS256 '{"exp": 7200, "nbf": 3600}')
run verify --key-file k1 --alg HS256 "$early"
refused BK_EJWT_NOT_YET_VALID "nbf in an hour"
run verify --key-file k1 --alg HS256 --leeway 7200 "$early"
expect 0 "nbf in an hour, 2 h leeway"
run verify --key-file k1 --alg HS256 "$(pyjwt k1 HS256 '{"sub": "no-exp"}')"
refused BK_EJWT_CLAIMS "no exp"

# ---- a key set: the token's kid selects the key, here the second one.
run issue --key-file k2 --alg HS256 --kid 2026-02 --sub carol
expect 0 "issue with kid"
rotated=$(cat out)
"$py" -c '
import jwt, sys
assert jwt.get_unverified_header(sys.argv[1])["kid"] == "2026-02"' "$rotated" || fail "no kid in the header"
run verify --key-file k1 --alg HS256 --kid 2026-01 --key-file k2 --alg HS256 --kid 2026-02 "$rotated"
expect 0 "kid selects the second key"
claims 'c["sub"] == "carol"'
run verify --kid 2026-01 --key-file k1 --alg HS256 "$rotated"
expect 2 "--kid before any --key-file"
run verify --key-file k1 --alg HS256 --kid 2026-01 "$rotated"
refused BK_EJWT_UNKNOWN_KEY "kid not in the set"
run verify --key-file k1 --alg HS256 --kid 2026-01 --key-file k2 --alg HS256 --kid 2026-02 \
    "$(pyjwt k2 HS256 '{"exp": 60}' '{"kid": "2026-01"}')"
refused BK_EJWT_SIGNATURE "kid naming the other key"
run verify --key-file k1 --alg HS256 --kid 2026-01 --key-file k2 --alg HS256 --kid 2026-02 \
    "$(pyjwt k2 HS256 '{"exp": 60}')"
refused BK_EJWT_UNKNOWN_KEY "no kid, two keys"
run issue --key-file k1 --alg HS256 --kid a --key-file k2 --alg HS256 --kid b
expect 0 "issue signs with the first key"
run verify --key-file k2 --alg HS256 --kid b --key-file k1 --alg HS256 --kid a "$(cat out)"
expect 0 "first key signed"
run verify --key-file k1 --alg HS256 --kid a --key-file k2 --alg HS256 "$tok"
expect 2 "a set of two with one kid missing"
run verify --key-file k1 --alg HS256 --kid a --key-file k2 --alg HS256 --kid a "$tok"
expect 2 "a kid twice"

# ---- RS256 with PEM keys made by openssl.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl pkey -in rsa.pem -pubout -out rsa.pub
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem 2>/dev/null
openssl pkey -in rsa2.pem -pubout -out rsa2.pub
run issue --key-file rsa.pem --alg RS256 --kid r1 --iss https://auth.example --claim 'scope="read"'
expect 0 "issue RS256"
rs=$(cat out)
run verify --key-file rsa.pub --alg RS256 --kid r1 --iss https://auth.example "$rs"
expect 0 "verify RS256 with the public key"
claims 'c["scope"] == "read" and c["iss"] == "https://auth.example"'
run verify --key-file rsa.pem --alg RS256 --kid r1 "$rs"
expect 0 "verify RS256 with the private key"
run verify --key-file rsa2.pub --alg RS256 --kid r1 "$rs"
refused BK_EJWT_SIGNATURE "RS256, another RSA key"
"$py" -c '
import jwt, sys
c = jwt.decode(sys.argv[1], open("rsa.pub", "rb").read(), algorithms=["RS256"])
assert c["scope"] == "read", c
' "$rs" || fail "PyJWT does not verify our RS256 token"
run verify --key-file rsa.pub --alg RS256 "$(pyjwt rsa.pem RS256 '{"exp": 60, "sub": "py"}')"
expect 0 "verify a PyJWT RS256 token"
claims 'c["sub"] == "py"'
run issue --key-file rsa.pub --alg RS256
expect 2 "issue with a public key"
run verify --key-file k1 --alg RS256 "$rs"
expect 2 "raw bytes as an RSA key"
# The token does not choose the algorithm: HS256 keyed with the RSA public key's PEM
# (the classic confusion), and "none", are refused before any signature check.
run verify --key-file rsa.pub --alg RS256 --kid r1 "$(handmade '{"alg":"HS256","typ":"JWT","kid":"r1"}' '{}' rsa.pub)"
refused BK_EJWT_ALGORITHM "HS256 token against an RS256 key"
run verify --key-file k1 --alg HS256 "$(handmade '{"alg":"none","typ":"JWT"}' '{}' '')"
refused BK_EJWT_MALFORMED "alg none with an empty signature"
run verify --key-file k1 --alg HS256 "$(handmade '{"alg":"none","typ":"JWT"}' '{}' k1)"
refused BK_EJWT_ALGORITHM "alg none"
run verify --key-file k1 --alg HS256 "$(handmade '{"alg":"HS256","alg":"HS256"}' '{}' k1)"
refused BK_EJWT_MALFORMED "duplicate header key"

# ---- usage errors: exit 2 with a message; --help exits 0.
run
expect 2 "no command"
run sign --key-file k1 --alg HS256
expect 2 "unknown command"
run issue --alg HS256
expect 2 "no --key-file"
run issue --key-file k1
expect 2 "no --alg"
run issue --key-file k1 --alg HS256 --alg HS384
expect 2 "--alg twice"
run issue --key-file k1 --alg HS999
expect 2 "unknown alg"
run issue --key-file missing --alg HS256
expect 2 "missing key file"
run issue --key-file k1 --alg HS256 --ttl 0
expect 2 "--ttl 0"
run issue --key-file k1 --alg HS256 --ttl 5s
expect 2 "--ttl 5s"
run issue --key-file k1 --alg HS256 --claim noequals
expect 2 "--claim without ="
run issue --key-file k1 --alg HS256 --claim exp=1
expect 2 "--claim naming a registered claim"
run issue --key-file k1 --alg HS256 --claim a=1 --claim a=2
expect 2 "--claim twice"
run issue --key-file k1 --alg HS256 "$tok"
expect 2 "issue with an operand"
run verify --key-file k1 --alg HS256
expect 2 "verify without a token"
run verify --key-file k1 --alg HS256 "$tok" "$tok"
expect 2 "verify with two tokens"
run verify --key-file k1 --alg HS256 --ttl 5 "$tok"
expect 2 "an issue option for verify"
run issue --key-file k1 --alg HS256 --leeway 5
expect 2 "a verify option for issue"
run verify --key-file k1 --alg HS256 --leeway -1 "$tok"
expect 2 "negative --leeway"
run verify --key-file k1 --alg HS256 --bogus "$tok"
expect 2 "unknown option"
grep -q '^usage: jwt ' err || fail "no usage for an unknown option"
run verify --key-file k1 --alg HS256 --iss
expect 2 "option without its argument"
run --help
[ "$rc" = 0 ] && grep -q '^usage: jwt ' out && [ ! -s err ] || fail "--help"
run verify --help
[ "$rc" = 0 ] && grep -q '^usage: jwt ' out && [ ! -s err ] || fail "verify --help"

echo "PASS: jwt issues and verifies HS256 and RS256 tokens, agrees with PyJWT, refuses each bad token with its own code (exit 1) and usage errors with exit 2"
