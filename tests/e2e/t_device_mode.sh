#!/bin/bash
# Device mode: a process in the appliance's own namespace reaches the server through the TUN
# (IPv4 and IPv6), the appliance's own upstream sockets do not loop, [routing] uids limits it to
# one user, and the rules are removed at exit and never pile up after a crash.
source "$(dirname "$0")/lib.sh"
e2e_topology_device
e2e_start_nginx
head -c 1M /dev/urandom >"$WORK/www/file.bin"
want=$(sha256sum <"$WORK/www/file.bin" | cut -d' ' -f1)

fetch() { # url [setpriv args]
    local url=$1 got
    shift
    got=$(in_a "$@" curl -sS --max-time 10 "$url" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "sha256 $got, want $want"; return 1; }
}
records_to() { # count of TCP records to server
    e2e_records_settle
    python3 -c "
import json, sys
n = sum(1 for l in open('$FLOWS') if json.loads(l)['server'] == sys.argv[1] and json.loads(l)['type'] == 'tcp')
print(n)" "$1"
}
exactly_one_record() {
    local n
    n=$(records_to "$1")
    [ "$n" = 1 ] || { echo "$n records to $1 (a loop would make more)"; return 1; }
}
rules() { in_a ip rule | grep -cE '^560[012]:'; }
rule_count_is() {
    local n
    n=$(rules)
    [ "$n" = "$1" ] || { in_a ip rule; return 1; }
}

e2e_start_device
check "device process reaches the server through the TUN (IPv4)" fetch http://10.98.3.2/file.bin
check "device process reaches the server through the TUN (IPv6)" fetch "http://[fd98:3::2]/file.bin"
check "recorded with the TUN address as client (IPv4)" e2e_record \
    'r["client"].startswith("10.200.0.1:") and r["server"]=="10.98.3.2:80" and r["end"]=="closed" and r["bytes_down"]>2**20'
check "recorded with the TUN address as client (IPv6)" e2e_record \
    'r["client"].startswith("[fd00:6d74::1]:") and r["server"]=="[fd98:3::2]:80" and r["end"]=="closed"'
check "upstream sockets do not loop: one record per connection" exactly_one_record 10.98.3.2:80
check "three rules while running" rule_count_is 3
e2e_stop_appliance
check "rules removed at exit" rule_count_is 0
check "direct again after exit (no record)" bash -c "$(declare -f fetch in_a); NS_A=$NS_A want=$want fetch http://10.98.3.2/file.bin && [ \$(python3 -c \"import json;print(sum(1 for l in open('$FLOWS') if json.loads(l)['server']=='10.98.3.2:80' and json.loads(l)['type']=='tcp'))\") = 1 ]"

# [routing] uids: only that user's traffic goes through the appliance.
e2e_start_device --set routing.uids=12345
check "uids: root's traffic stays direct" fetch http://10.98.3.2/file.bin
check "uids: no record for root's connection" exactly_one_record 10.98.3.2:80
check "uids: user 12345 goes through the TUN" fetch http://10.98.3.2/file.bin setpriv --reuid=12345 --regid=12345 --clear-groups
e2e_records_settle
check "uids: user 12345 recorded" bash -c "[ \$(python3 -c \"import json;print(sum(1 for l in open('$FLOWS') if json.loads(l)['server']=='10.98.3.2:80' and json.loads(l)['type']=='tcp'))\") = 2 ]"

# A crash leaves rules behind; the next start removes them first.
kill -9 "$APP_PID"
wait "$APP_PID" 2>/dev/null
APP_PID=
check "a crash leaves the rules behind" rule_count_is 3
e2e_start_device
check "restart after a crash: no duplicate rules" rule_count_is 3
e2e_stop_appliance
check "rules removed at exit" rule_count_is 0
e2e_pass
