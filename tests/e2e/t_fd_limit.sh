#!/bin/bash
# Out of file descriptors (the appliance under a hard limit of 64 open files): new connections
# are refused with a reset and a record saying why, one warning names the limit and how to raise
# it, the explicit proxy's listener pauses instead of spinning on accept(), and everything works
# again once connections close. Held connections that close before sending a byte are recorded
# as closed.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_start_nginx
echo "hello from nginx" >"$WORK/www/index.html"
cat >"$WORK/limited" <<SH
#!/bin/sh
exec prlimit --nofile=64:64 "$MITMTUN" "\$@"
SH
chmod +x "$WORK/limited"
# No upstream reuse: with the first fetch's upstream connection parked, the device's next SYNs
# to that server would be accepted before any connect, so the held connections would use no fd.
MITMTUN=$WORK/limited e2e_start_appliance --set proxy.upstream_reuse=0
PROXY=http://10.99.1.1:8080

page() { [ "$(in_c curl -sS --max-time 5 "$@" http://10.99.2.2/index.html)" = "hello from nginx" ]; }
ticks() { awk '{print $14 + $15}' /proc/$APP_PID/stat; }

check "startup warns that the open files limit is low" grep -q "open files limit 64: " "$APP_LOG"
check "served before the limit is reached" page
in_c $TOOLS hold_some 10.99.2.2 80 80 8 "$WORK/held" &
HOLD=$!
for _ in $(seq 100); do [ -s "$WORK/held" ] && break; sleep 0.1; done
read -r opened refused <"$WORK/held" || true
check "some connections held, the rest refused with a reset" \
    bash -c "echo opened $opened refused $refused; [ ${opened:-0} -gt 10 ] && [ ${refused:-0} -gt 0 ]"
check "a refused connection is recorded with the reason" \
    e2e_record 'r["end"]=="error" and r["error"]=="Too many open files" and r["server"]=="10.99.2.2:80"'
check "one warning names the limit and how to raise it" bash -c "
    [ \$(grep -c 'out of file descriptors (open files limit 64)' '$APP_LOG') = 1 ] &&
    grep -q 'ulimit -n, or LimitNOFILE=' '$APP_LOG'"
no_spin() { # a proxy client waits on the full listener for 2 s; the appliance must stay idle
    local t0 t1
    t0=$(ticks)
    in_c curl -sS --max-time 2 -x $PROXY http://10.99.2.2/index.html -o /dev/null
    t1=$(ticks)
    echo "CPU ticks while the listener could not accept: $((t1 - t0)) (of $((2 * $(getconf CLK_TCK))))"
    [ $((t1 - t0)) -lt $(($(getconf CLK_TCK) / 2)) ]
}
check "explicit proxy: the listener pauses instead of spinning on accept()" no_spin
fds_counted() { # the stats line counts the refusals
    local line
    line=$(e2e_stats)
    echo "$line"
    [[ "$line" =~ "refused for want of fds="([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge "${refused:-1}" ]
}
check "the stats line counts what was refused for want of file descriptors" fds_counted
wait $HOLD
check "after the held connections close: transparent fetch" page
check "after the held connections close: explicit proxy fetch" page -x $PROXY
e2e_records_settle
check "held connections that sent nothing are recorded as closed, not as TLS errors" python3 -c "
import json
recs = [r for r in map(json.loads, open('$FLOWS')) if r['type'] == 'tcp' and r['bytes_up'] == 0
        and r['server'] == '10.99.2.2:80' and r['end'] != 'error']
assert len(recs) >= ${opened:-1}, len(recs)
assert all(r['end'] == 'closed' for r in recs), set(r['end'] for r in recs)"
e2e_stop_appliance
e2e_pass
