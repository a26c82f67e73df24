#!/bin/bash
# Benchmark helper (not a test): two builds of mitmtun, A and B, alternate ROUNDS times on one
# topology (the bench_http setup), each serving clients of its explicit proxy: 4 Python
# processes, each opening one CONNECT tunnel after another to nginx's HTTPS and making one GET
# in it. Each run prints tunnels/s and the appliance's CPU per tunnel. To compare settings,
# make A and B scripts that run one build with different --set options.
#   tests/bench/ab_proxy.sh A B [ROUNDS, default 3] [seconds per run, default 6] [--set ...]
source "$(dirname "$0")/ab_lib.sh" "$@"
ab_https_setup
tunnels() { # round name
    local t0 t1 rate
    in_c $TOOLS tls-rate 10.99.2.2 443 1 4 "$WORK/ca/ca.crt" 10.99.2.2 \
        10.99.1.1:8080 >/dev/null # warm-up
    read -r t0 _ <<<"$(ab_ticks $APP_PID)"
    rate=$(in_c $TOOLS tls-rate 10.99.2.2 443 "$SECS" 4 "$WORK/ca/ca.crt" \
        10.99.2.2 10.99.1.1:8080)
    read -r t1 _ <<<"$(ab_ticks $APP_PID)"
    python3 -c "
rate, n = $rate, max($rate * $SECS, 1)
print('round $1 %-24s %5.0f tunnels/s  appliance %5.0f us/tunnel' % ('$2', rate,
      ($t1 - $t0) / $hz / n * 1e6))"
}
ab_run tunnels
