#!/usr/bin/env bash
# The public headers follow the API conventions of HACKING.md, as far as a grep can
# tell: durations in nanoseconds named *_ns, an _opts_init for every options struct,
# a reserved_ tail on every options struct, callbacks with their user-data pointer
# last, json_t references taken only where the function is listed as taking them,
# and no char *err, size_t errsz pairs.
set -euo pipefail
cd "$top_srcdir"
status=0
fail() { echo "FAIL: $*"; status=1; }
headers=(include/backend/*.h)

# Declarations without comments, one per line (a declaration may span lines).
decls=$(cat "${headers[@]}" | perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g' | tr '\n' ' ' |
        tr ';' '\n' | tr -s ' ')

# 1. Durations: a name ending in _ms, _us or _s, or a *timeout / *max_age / *ttl
#    without _ns, is a duration in another unit.
bad=$(grep -oE '\b(int|int64_t|long|unsigned|uint64_t|double) +[a-z_]+(_ms|_us|_s|timeout|max_age|ttl|_wait|_delay|leeway) *([,)]|$)' \
      <<<"$decls" | sed 's/ *[,)]$//' | sort -u || true)
[ -z "$bad" ] || fail "durations not in *_ns: $(echo "$bad" | tr '\n' ',')"

# 2. Every options struct has an _opts_init, and ends in its reserved_ tail.
for t in $(grep -ohE 'typedef struct bk_[a-z_]+_opts\b' "${headers[@]}" | awk '{print $3}' | sort -u); do
    grep -qE "\\b${t}_init\\(" "${headers[@]}" || fail "$t has no ${t}_init"
    body=$(awk "/typedef struct $t \\{/,/\\} ${t}_t;/" "${headers[@]}")
    last=$(grep -vE '^\s*(/\*|\*|\})' <<<"$body" | grep -E ';' | tail -n 1)
    grep -q 'reserved_\[' <<<"$last" || fail "${t}_t does not end in a reserved_ tail"
done

# 3. Callback types take their user-data pointer last: no (*fn)(void *ud, ...).
bad=$(grep -ohE '\(\*[a-z_]+\)\(void \*[a-z_]*,' "${headers[@]}" || true)
[ -z "$bad" ] || fail "callbacks with the user-data pointer first: $bad"

# 4. A non-const json_t * parameter is a reference taken: only these functions take one.
takers=' bk_log bk_logv bk_req_log bk_res_json bk_res_problem bk_res_error_ext '
while read -r fn; do
    case "$takers" in *" $fn "*) ;; *) fail "$fn takes a non-const json_t * (borrowed ones are const)";; esac
done < <(grep -oE 'BK_EXPORT [^(]*\b(bk_[a-z0-9_]+)\(([^)]*,)? *json_t \*[a-z_]+' <<<"$decls" |
         grep -oE 'bk_[a-z0-9_]+\(' | tr -d '(' | sort -u)

# 5. One error-detail shape: bk_error_t, never a caller buffer and its size.
bad=$(grep -nE 'char \*err, *size_t errsz' "${headers[@]}" || true)
[ -z "$bad" ] || fail "char *err, size_t errsz pairs (use bk_error_t *err): $bad"

[ $status = 0 ] && echo "PASS: the public headers follow the API conventions"
exit $status
