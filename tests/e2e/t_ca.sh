#!/bin/bash
# Our CA as a user meets it: made on first start (key mode 0600, a CA certificate for ten
# years), the same one loaded again, exported in every installer's format, a broken one refused
# with the file named. Checked with the openssl command-line tool.
source "$(dirname "$0")/lib.sh"
CA=$WORK/ca
OUT=$WORK/export
run_mitmtun() { "$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set tls.ca_dir="$CA" "$@"; }

made() {
    run_mitmtun ca export "$OUT" && [ -f "$CA/ca.key" ] && [ -f "$CA/ca.crt" ]
}
key_private() { [ "$(stat -c %a "$CA/ca.key")" = 600 ] && [ "$(stat -c %a "$CA")" = 700 ]; }
is_ca() {
    local text
    text=$(openssl x509 -in "$CA/ca.crt" -noout -text)
    echo "$text" | grep -A1 "Basic Constraints: critical" | grep -q "CA:TRUE" &&
        echo "$text" | grep -A1 "Key Usage: critical" | grep -q "Certificate Sign" &&
        echo "$text" | grep -q "Subject: O = mitmtun, CN = mitmtun interception CA" &&
        openssl verify -CAfile "$CA/ca.crt" "$CA/ca.crt" &&
        [ "$(openssl x509 -in "$CA/ca.crt" -noout -checkend $((9 * 365 * 86400)) >/dev/null; echo $?)" = 0 ]
}
same_ca_again() {
    local before after
    before=$(openssl x509 -in "$CA/ca.crt" -noout -fingerprint -sha256)
    run_mitmtun ca export "$OUT" >/dev/null || return 1
    after=$(openssl x509 -in "$CA/ca.crt" -noout -fingerprint -sha256)
    [ "$before" = "$after" ]
}
exports() {
    local hash
    hash=$(openssl x509 -in "$CA/ca.crt" -noout -subject_hash_old)
    cmp <(openssl x509 -in "$CA/ca.crt" -outform DER) "$OUT/mitmtun-ca.crt" &&
        cmp "$OUT/mitmtun-ca.crt" "$OUT/mitmtun-ca.cer" &&
        cmp <(openssl x509 -in "$CA/ca.crt") <(openssl x509 -in "$OUT/mitmtun-ca.pem") &&
        cmp <(openssl x509 -in "$CA/ca.crt") <(openssl x509 -in "$OUT/$hash.0") &&
        cmp <(openssl x509 -in "$CA/ca.crt") <(openssl pkcs12 -in "$OUT/mitmtun-ca.p12" -passin pass: -nokeys | openssl x509) &&
        ! openssl pkcs12 -in "$OUT/mitmtun-ca.p12" -passin pass: -nocerts -nodes | grep -q "PRIVATE KEY" &&
        grep -q "Android 14" "$OUT/README.txt" && grep -q "$hash.0" "$OUT/README.txt"
}
# Breaks the CA with a command, expects a refusal saying want, then restores the CA.
refused_after() { # want command...
    local want=$1 out rc
    shift
    cp -a "$CA" "$WORK/ca.good"
    "$@"
    out=$(run_mitmtun ca export "$OUT" 2>&1)
    rc=$?
    rm -rf "$CA"
    mv "$WORK/ca.good" "$CA"
    echo "exit $rc: $out"
    [ "$rc" = 1 ] && [[ "$out" == *"$want"* ]]
}
garbage() { printf 'garbage\n' >"$CA/$1"; }
other_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$CA/ca.key" 2>/dev/null; }

check "first use makes a CA" made
check "the key is private (0600, directory 0700)" key_private
check "a CA certificate: CA:TRUE critical, keyCertSign, named mitmtun, ten years" is_ca
check "the same CA is loaded again" same_ca_again
check "exported as PEM, DER (.crt, .cer), PKCS#12 without key, Android hash file, README" exports
check "a garbage certificate is refused, the file named" refused_after "ca.crt: not a PEM certificate" garbage ca.crt
check "a garbage key is refused, the file named" refused_after "ca.key: not a PEM private key" garbage ca.key
check "a key that does not match is refused" refused_after "ca.key does not belong to" other_key
lone() { # a CA certificate without its key is never silently replaced
    local out
    rm "$CA/ca.key"
    out=$(run_mitmtun ca export "$OUT" 2>&1)
    echo "exit $?: $out"
    [[ "$out" == *"has ca.crt but not ca.key"* ]] && [ ! -e "$CA/ca.key" ]
}
check "a lone certificate is refused, not replaced" lone
e2e_pass
