#!/bin/bash
# The command line as a user meets it: help, version, --check, clear errors with exit status 2
# for bad configurations, a one-line explanation when privileges are missing.
source "$(dirname "$0")/lib.sh"

expect() { # exit-status "output part" command...
    local want_rc=$1 want=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    echo "exit $rc: $out"
    [ "$rc" = "$want_rc" ] && [[ "$out" == *"$want"* ]]
}
bad_ini() { # contents: written to a file, checked
    printf '%b' "$1" >"$WORK/bad.ini"
    expect 2 "$2" "$MITMTUN" -c "$WORK/bad.ini" --check
}

check "--help" expect 0 "usage: mitmtun -c FILE" "$MITMTUN" --help
check "--version" expect 0 "mitmtun 0." "$MITMTUN" --version
check "no config: usage error" expect 2 "no configuration given" "$MITMTUN"
check "har without a file: its usage" expect 2 "usage: mitmtun har FLOWS.jsonl" "$MITMTUN" har
check "har of an empty flows file: a HAR with no entries" bash -c "
    : >$WORK/empty.jsonl
    $MITMTUN har $WORK/empty.jsonl | python3 -c 'import json,sys; l=json.load(sys.stdin)[\"log\"]; assert l[\"version\"]==\"1.2\" and l[\"entries\"]==[]'"
for f in mitmtun device hotspot; do
    check "--check accepts configs/$f.ini" expect 0 "configuration OK" "$MITMTUN" -c "$REPO/configs/$f.ini" --check
done
check "missing file named" expect 2 "/nonexistent.ini: cannot open" "$MITMTUN" -c /nonexistent.ini --check
check "bad value: file, section, key, value, expectation" bad_ini '[tun]\nmtu = big\n' \
    "bad.ini: [tun] mtu: 'big': expected a whole number from 1280 to 65535"
check "unknown key refused" bad_ini '[udp]\nidle_timout = 5\n' "[udp] idle_timout: unknown key"
check "gateway without lan_interface refused" bad_ini '[routing]\nmode = gateway\n' "lan_interface: required"
check "--set validated like the file" expect 2 "[tcp] connect_timeout: '0'" \
    "$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set tcp.connect_timeout=0 --check
check "--set unknown key" expect 2 "--set tcp.nope: unknown key" \
    "$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set tcp.nope=1 --check

# Without CAP_NET_ADMIN: one line that says what is missing and what to do, exit status 1.
ip netns add "$NS_A"
no_privilege() {
    local out rc
    out=$(ip netns exec "$NS_A" setpriv --reuid=65534 --regid=65534 --clear-groups \
        --inh-caps=-all --bounding-set=-all "$MITMTUN" -c "$REPO/configs/mitmtun.ini" \
        --set log.flows= 2>&1)
    rc=$?
    echo "exit $rc: $out"
    [ "$rc" = 1 ] && [[ "$out" == *"needs CAP_NET_ADMIN"* ]] && [ "$(echo "$out" | wc -l)" = 1 ]
}
check "no CAP_NET_ADMIN: one-line explanation" no_privilege
check "flows file that cannot be opened is named" expect 1 "[log] flows: cannot open '/nonexistent/dir/f.jsonl'" \
    ip netns exec "$NS_A" "$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set log.flows=/nonexistent/dir/f.jsonl --set tls.ca_dir="$WORK/ca"
e2e_pass
