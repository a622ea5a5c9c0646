#!/usr/bin/env bash
# The README's Analysis reference against the CRD, crds/analysis.yaml:
#  - every field of the spec reference table is in the CRD's schema, and every
#    spec field of the schema is in the table (both directions);
#  - the same for the status reference table;
#  - each row's type is the schema's type; where the schema has a default, the
#    row shows it; the schema's required fields say "required";
#  - a default cell that starts with a value (`...`) states the schema's default,
#    unless it says the value is a "controller default" (applied by the controller,
#    not the API server);
#  - every field of the schema, spec and status, down to array items' fields, has a
#    description (what `kubectl explain` shows);
#  - with a cluster (the test bed), the README's example Analysis passes the
#    schema (server-side dry run).
# Needs no cluster for the first three: kubectl converts the YAML offline.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

readme="$PLATEOP_ROOT/README.md"
crd="$PLATEOP_ROOT/crds/analysis.yaml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The CRD as JSON without a server: `annotate --local` reads and prints the file.
if ! KUBECONFIG=/dev/null kubectl annotate --local -f "$crd" plateop.io/readme-check=1 -o json \
    >"$tmp/crd.json" 2>"$tmp/err"; then
    t_fail "kubectl reads crds/analysis.yaml" "$(cat "$tmp/err")"
    t_done
    exit 1
fi

# Schema fields, one per line: PATH|TYPE|DEFAULT|required-or-empty (a tab would not do:
# read merges empty fields between tabs).
# Array items are PATH[]; int-or-string fields have the type int-or-string.
jq -r '
    def fields($p):
        (.required // []) as $req
        | (.properties // {}) | to_entries[]
        | .key as $k | .value as $v | "\($p).\($k)" as $q
        | ([$q,
            (if $v["x-kubernetes-int-or-string"] then "int-or-string" else ($v.type // "?") end),
            (if ($v | has("default")) then ($v.default | if type == "string" then . else tojson end)
             else "" end),
            (if ($req | any(. == $k)) then "required" else "" end)] | join("|")),
          ($v | fields($q)),
          ($v.items // empty | fields($q + "[]"));
    .spec.versions[].schema.openAPIV3Schema.properties as $top
    | ($top.spec | fields("spec")), ($top.status | fields("status"))' "$tmp/crd.json" |
    sort -u >"$tmp/schema.txt"

# README rows: "| `spec.x.y` | type | default | meaning |" and "| `status.x` | type | meaning |".
# Out: PATH|TYPE-WORD|DEFAULT-CELL (status rows: empty).
awk -F'|' '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    /^\| `(spec|status)\./ {
        path = trim($2); gsub(/`/, "", path)
        type = trim($3); sub(/[ :,(].*/, "", type); gsub(/`/, "", type)
        def = (path ~ /^spec\./) ? trim($4) : ""
        print path "|" type "|" def
    }' "$readme" | sort >"$tmp/readme.txt"

# Fields without a description.
jq -r '
    def undocumented($p):
        (.properties // {}) | to_entries[]
        | .key as $k | .value as $v | "\($p).\($k)" as $q
        | (if ($v.description // "") == "" then $q else empty end),
          ($v | undocumented($q)),
          ($v.items // empty | undocumented($q + "[]"));
    .spec.versions[].schema.openAPIV3Schema.properties as $top
    | ($top.spec | undocumented("spec")), ($top.status | undocumented("status"))' \
    "$tmp/crd.json" >"$tmp/undocumented.txt"

cut -d'|' -f1 "$tmp/schema.txt" | sort -u >"$tmp/schema.paths"
cut -d'|' -f1 "$tmp/readme.txt" | sort >"$tmp/readme.paths"

t_check "the README has a spec reference table" grep -q '^spec\.' "$tmp/readme.paths"
t_check "the README has a status reference table" grep -q '^status\.' "$tmp/readme.paths"
t_check "no field is listed twice in the README" \
    sh -c '[ -z "$(uniq -d "$1")" ] || { echo "listed twice:"; uniq -d "$1"; exit 1; }' _ "$tmp/readme.paths"

# in_a_not_b PREFIX A B: the PREFIX paths of A missing from B.
missing() {
    local out
    out=$(comm -23 <(grep "^$1\." "$2" | sort -u) <(sort -u "$3"))
    [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
t_check "every spec field of the README's reference exists in the CRD schema" \
    missing spec "$tmp/readme.paths" "$tmp/schema.paths"
t_check "every spec field of the CRD schema is in the README's reference" \
    missing spec "$tmp/schema.paths" "$tmp/readme.paths"
t_check "every status field of the README's reference exists in the CRD schema" \
    missing status "$tmp/readme.paths" "$tmp/schema.paths"
t_check "every status field of the CRD schema is in the README's reference" \
    missing status "$tmp/schema.paths" "$tmp/readme.paths"

# agree: for every field in both, the README's type is the schema's, the schema's
# default appears in backticks in the default column, and required fields say so.
agree() {
    local bad=0 path type def req rtype rdef
    while IFS='|' read -r path type def req; do
        IFS='|' read -r _ rtype rdef < <(awk -F'|' -v p="$path" '$1 == p' "$tmp/readme.txt") || continue
        if [ "$rtype" != "$type" ]; then
            echo "$path: README says type '$rtype', the schema '$type'"
            bad=1
        fi
        if [ -n "$def" ] && [[ "$rdef" != *"\`$def\`"* ]]; then
            echo "$path: the schema's default is $def; the README says '$rdef'"
            bad=1
        fi
        [[ $path == spec.* ]] || req=
        if [ -n "$req" ] && [ "$rdef" != required ]; then
            echo "$path: required in the schema; the README's default column says '$rdef'"
            bad=1
        fi
        if [ -z "$req" ] && [ "$rdef" = required ] && [[ $path == spec.* ]]; then
            echo "$path: the README says required; the schema does not"
            bad=1
        fi
    done <"$tmp/schema.txt"
    return $bad
}
t_check "types, defaults and required fields in the README match the schema" agree

t_check "every spec and status field of the CRD schema has a description (kubectl explain)" \
    sh -c '[ ! -s "$1" ] || { echo "no description:"; cat "$1"; exit 1; }' _ "$tmp/undocumented.txt"

# README default cells that state a value the schema does not default to.
defaults_in_schema() {
    local bad=0 path rdef def
    while IFS='|' read -r path _ rdef; do
        [[ $path == spec.* && $rdef == \`* ]] || continue
        [[ $rdef == *"controller default"* ]] && continue
        def=$(awk -F'|' -v p="$path" '$1 == p { print $3 }' "$tmp/schema.txt")
        if [ -z "$def" ]; then
            echo "$path: the README's default is $rdef; the schema has none (say \"controller default\" if the controller applies it)"
            bad=1
        fi
    done <"$tmp/readme.txt"
    return $bad
}
t_check "every default value in the README is the schema's, or marked a controller default" \
    defaults_in_schema

# The example manifest: the first yaml block of the README that is an Analysis.
awk '/^```yaml$/ { inblock = 1; buf = ""; next }
     /^```$/ && inblock { inblock = 0; if (buf ~ /kind: Analysis/) { printf "%s", buf; exit } next }
     inblock { buf = buf $0 "\n" }' "$readme" >"$tmp/example.yaml"
t_check "the README has an example Analysis" grep -q '^kind: Analysis$' "$tmp/example.yaml"
t_check "the example sets only fields of the reference (spec keys, top level)" \
    sh -c 'awk "/^spec:/ { s = 1; next } s && /^  [A-Za-z]/ { sub(/:.*/, \"\"); sub(/^  /, \"\"); print \"spec.\" \$0 }" "$1" |
        while read -r f; do grep -qx "$f" "$2" || { echo "$f not in the reference"; exit 1; }; done' \
    _ "$tmp/example.yaml" "$tmp/readme.paths"

if [ -n "${KUBECONFIG:-}" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
    ns=readme-spec-$$
    kubectl apply -f "$crd" >/dev/null &&
        kubectl wait --for condition=established --timeout=30s crd/analyses.plateop.io >/dev/null
    kubectl create namespace "$ns" >/dev/null
    sed '/^  namespace:/d' "$tmp/example.yaml" >"$tmp/example-ns.yaml"
    t_check "the example passes the CRD's schema (kubectl apply --dry-run=server)" \
        kubectl -n "$ns" apply --dry-run=server -f "$tmp/example-ns.yaml"
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
else
    echo "ok $((t_n + 1)) - the example passes the CRD's schema # SKIP no cluster"
    t_n=$((t_n + 1))
fi

t_done
