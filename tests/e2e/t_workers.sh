#!/bin/bash
# [tun] workers = 2: two worker processes, each on its own queue of a multi-queue TUN.
# Connections, UDP flows and pings spread over both and are answered; every record is whole;
# the explicit proxy answers; what one worker learns for auto_passthrough holds in the other;
# signals reach every worker; a worker that dies is started again while the other serves on;
# SIGTERM stops them all and takes the routing away; one that cannot start stops everything, as
# does one that dies a fifth time within a minute; a main process killed outright takes its
# workers along.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_bench_server # nginx on 80, and on 443 with a certificate of the upstream test CA
head -c 100K /dev/urandom >"$WORK/www/small.bin"
small=$(sha256sum <"$WORK/www/small.bin" | cut -d' ' -f1)
ip netns exec "$NS_S" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('10.99.2.2', 5353))
while True:
    data, peer = s.recvfrom(100)
    s.sendto(b'echo ' + data, peer)" >/dev/null 2>&1 & # a UDP echo server
PIDS+=($!)
for _ in $(seq 50); do in_s ss -Hlun 'sport = :5353' | grep -q 5353 && break; sleep 0.1; done
e2e_start_appliance --set tun.workers=2 --set tls.upstream_ca_file="$WORK/pki/uca.crt" \
    --set tls.auto_passthrough=yes

workers() { pgrep -P "$APP_PID" | sort; }
two_workers() {
    [ "$(workers | wc -l)" = 2 ] && grep -q '2 workers' "$APP_LOG" &&
        ip -n "$NS_A" -d link show mitm0 | grep -q multi_queue
}
# SIGUSR1 to the main process: one fresh stats line from each worker; prints them.
worker_stats() {
    local before
    before=$(grep -c 'stats:' "$APP_LOG")
    kill -USR1 "$APP_PID"
    for _ in $(seq 50); do
        [ "$(grep -c 'stats:' "$APP_LOG")" -ge $((before + 2)) ] && break
        sleep 0.1
    done
    grep 'stats:' "$APP_LOG" | tail -n +$((before + 1))
}
both_served() { # each worker's stats line counts connections
    local out
    out=$(worker_stats)
    echo "$out"
    for i in 1 2; do
        echo "$out" | grep -q "worker $i: stats: tcp open=[0-9]* total=[1-9]" || return 1
    done
}
records_whole() { # n: records with that many of server 10.99.2.2:80, every line JSON
    e2e_records_settle
    python3 -c "
import json
recs = [json.loads(l) for l in open('$FLOWS')]
n = sum(1 for r in recs if r['type'] == 'tcp' and r['server'] == '10.99.2.2:80' and r['end'] == 'closed')
ids = [r['id'] for r in recs if r['type'] in ('tcp', 'udp')]
print(len(recs), 'records,', n, 'closed TCP to 10.99.2.2:80,', len(set(ids)), 'distinct ids')
assert n == $1, n
assert len(set(ids)) == len(ids), 'an id twice'"
}
proxy_gets() { # 20 requests through the explicit proxy, spread over both workers' sockets
    for _ in $(seq 20); do
        in_c curl -sS --max-time 10 -x http://10.200.0.1:8080 -o /dev/null -w '%{http_code}\n' \
            http://10.99.2.2/small.bin | grep -qx 200 || return 1
    done
}
respawned() {
    local victim
    victim=$(workers | head -1)
    kill -9 "$victim"
    for _ in $(seq 50); do
        grep -q 'worker [12] was killed by signal 9.*starting it again' "$APP_LOG" &&
            [ "$(workers | wc -l)" = 2 ] && ! workers | grep -qx "$victim" && return 0
        sleep 0.1
    done
    cat "$APP_LOG"
    return 1
}
reopened() { # logrotate's way: move the file, SIGUSR2; every worker writes to the new one
    mv "$FLOWS" "$FLOWS.1"
    kill -USR2 "$APP_PID"
    sleep 0.5
    in_c $TOOLS concurrent 10.99.2.2 80 50 /small.bin "$small" >/dev/null || return 1
    e2e_records_settle
    python3 -c "
import json
recs = [json.loads(l) for l in open('$FLOWS')]
assert sum(1 for r in recs if r['type'] == 'tcp') == 50, len(recs)"
}

check "two worker processes, the TUN with two queues" two_workers
check "400 concurrent connections complete byte-exact" \
    in_c $TOOLS concurrent 10.99.2.2 80 400 /small.bin "$small"
check "both workers served some of them (their stats lines)" both_served
check "all 400 recorded, every line of the flows file whole, no id twice" records_whole 400
pings() { # eight at once from eight addresses (the TUN spreads them by address over both
    # workers, whose raw sockets each see every reply): each answered, and only to itself
    local pids=() rc=0
    for i in $(seq 10 17); do
        in_c ip addr add 10.99.1.$i/24 dev c0 2>/dev/null
        ip netns exec "$NS_C" ping -c3 -i0.2 -W2 -I 10.99.1.$i 10.99.2.2 >"$WORK/ping.$i" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    grep -h 'packets transmitted' "$WORK"/ping.*
    ! grep -q duplicates "$WORK"/ping.* && return $rc
}
check "eight pings at once are each answered once" pings
udp_flows() { # 40 UDP flows (40 source ports, over both workers), each answered with its own
    in_c python3 -c "
import socket, time
socks = []
for i in range(40):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b'flow %d' % i, ('10.99.2.2', 5353))
    socks.append(s)
for i, s in enumerate(socks):
    data = s.recv(100)
    assert data == b'echo flow %d' % i, data
print('40 answers, each to its own flow')"
}
check "40 UDP flows at once are each answered" udp_flows
check "the explicit proxy answers 20 requests in a row" proxy_gets
real_ca_get() { # a client that trusts only the real server's CA, each time a new connection
    in_c curl -sS --max-time 5 --cacert "$WORK/pki/uca.crt" --resolve bench.example:443:10.99.2.2 \
        -o /dev/null https://bench.example/1k.txt
}
passed_through() { # auto_passthrough: once refused, the host passes through in every worker
    ! real_ca_get 2>/dev/null || return 1 # our certificate, refused
    e2e_record 'r["server"]=="10.99.2.2:443" and r["end"]=="tls_error"' >/dev/null || return 1
    for i in $(seq 10); do real_ca_get || { echo "connection $i after the refusal failed"; return 1; }; done
}
check "a host refused once passes through on ten new connections (both workers)" passed_through
check "a worker killed with SIGKILL is started again" respawned
check "after that, 400 more connections complete byte-exact" \
    in_c $TOOLS concurrent 10.99.2.2 80 400 /small.bin "$small"
check "SIGUSR2: the workers write to a new flows file" reopened
pids=$(workers)
e2e_stop_appliance
gone() {
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && return 1; done
    ! ip -n "$NS_A" link show mitm0 >/dev/null 2>&1 && ! ip -n "$NS_A" rule | grep -q 'iif ac'
}
check "no worker left, the TUN device and the routing rule gone" gone

# A worker that keeps dying: the fifth death within a minute stops the appliance, status 1,
# saying so, with the other worker stopped and the routing taken away.
e2e_start_appliance --set tun.workers=2 >/dev/null
kill_newest() { # kills the newest worker; waits for its successor
    local victim
    victim=$(pgrep -n -P "$APP_PID") || return 1
    kill -9 "$victim"
    for _ in $(seq 50); do
        ! kill -0 "$APP_PID" 2>/dev/null && return 0
        [ "$(workers | wc -l)" = 2 ] && ! workers | grep -qx "$victim" && return 0
        sleep 0.1
    done
    return 1
}
four_deaths() {
    for _ in 1 2 3 4; do kill_newest || return 1; done
    [ "$(grep -c 'was killed by signal 9 (Killed): starting it again' "$APP_LOG")" = 4 ] && kill -0 "$APP_PID"
}
check "a worker killed four times within a minute is started again each time" four_deaths
survivors=$(workers)
check "the fifth death within a minute is the last one" kill_newest
CASES=$((CASES + 1))
for _ in $(seq 100); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$APP_PID" 2>/dev/null && kill -TERM "$APP_PID" # it did not stop: not a hang, a failure
wait "$APP_PID"
rc=$?
APP_PID=
if [ $rc = 1 ] && grep -q 'worker 2 was killed by signal 9 (Killed), the 5th time within a minute: stopping' "$APP_LOG"; then
    ok "then the appliance stops: status 1, the reason in its log"
else
    fail "then the appliance stops: status 1, the reason in its log (status $rc)"
    tail -5 "$APP_LOG"
fi
pids=$survivors
check "no worker left, the TUN device and the routing rule gone" gone

# The main process killed outright (SIGKILL: no cleanup) takes its workers along; the next
# start removes the routing it left and serves.
e2e_start_appliance --set tun.workers=2 >/dev/null
pids=$(workers)
kill -9 "$APP_PID"
wait "$APP_PID" 2>/dev/null
APP_PID=
orphans_gone() {
    for _ in $(seq 50); do
        local alive=0
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    ps -o pid,ppid,stat,cmd -p $pids
    return 1
}
check "the main process killed with SIGKILL: both workers exit" orphans_gone
kill -9 $pids 2>/dev/null # when that failed: not left behind
e2e_start_appliance --set tun.workers=2 >/dev/null
serves_again() {
    [ "$(ip -n "$NS_A" rule | grep -c 'iif ac')" = 1 ] &&
        in_c $TOOLS concurrent 10.99.2.2 80 20 /small.bin "$small" >/dev/null
}
check "started again after that: one routing rule, and it serves" serves_again
e2e_stop_appliance

# A worker that cannot start (the explicit proxy's port taken by another program) stops the
# appliance at once, with status 1 and the reason, and leaves no routing behind.
busy_port() {
    local holder rc
    ip netns exec "$NS_A" python3 -c "
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the TUN address does not exist yet
s.bind(('10.200.0.1', 8080)); s.listen()
time.sleep(30)" >/dev/null 2>&1 &
    holder=$!
    for _ in $(seq 50); do
        in_a ss -Hltn 'sport = :8080' | grep -q 10.200.0.1 && break
        sleep 0.1
    done
    timeout 20 ip netns exec "$NS_A" "$MITMTUN" -c "$REPO/configs/mitmtun.ini" \
        --set routing.mode=gateway --set routing.lan_interface=ac --set tun.workers=2 \
        --set tls.ca_dir="$WORK/ca" >"$WORK/busy.log" 2>&1
    rc=$?
    kill $holder
    cat "$WORK/busy.log"
    [ $rc = 1 ] && grep -q '10.200.0.1:8080: Address already in use' "$WORK/busy.log" &&
        grep -q 'worker [12] exited with status 1 while starting' "$WORK/busy.log" &&
        ! ip -n "$NS_A" rule | grep -q 'iif ac'
}
check "a worker that cannot start: exit status 1, the reason, no routing left" busy_port
e2e_pass
