#!/bin/bash
# A 64 MiB HTTP download through the TUN arrives byte-exact over IPv4 and IPv6, and each is
# recorded with its original destination and byte counts.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_start_nginx
head -c 64M /dev/urandom >"$WORK/www/big.bin"
want=$(sha256sum <"$WORK/www/big.bin" | cut -d' ' -f1)
e2e_start_appliance

download() { # url
    local got
    got=$(in_c curl -sS --max-time 60 "$1" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "sha256 $got, want $want"; return 1; }
}
check "64 MiB over IPv4 arrives byte-exact" download http://10.99.2.2/big.bin
check "64 MiB over IPv6 arrives byte-exact" download "http://[fd99:2::2]/big.bin"
# Many short downloads in a row: a segment left unsent in the netstack would stall one of them.
head -c 4M /dev/urandom >"$WORK/www/4m.bin"
want4=$(sha256sum <"$WORK/www/4m.bin" | cut -d' ' -f1)
repeated() {
    for i in $(seq 20); do
        got=$(in_c curl -sS --max-time 3 http://10.99.2.2/4m.bin | sha256sum | cut -d' ' -f1)
        [ "$got" = "$want4" ] || { echo "download $i: sha256 $got"; return 1; }
    done
}
check "20 downloads in a row, none stalls (3 s limit each)" repeated
check "IPv4 download recorded" e2e_record \
    'r["type"]=="tcp" and r["server"]=="10.99.2.2:80" and r["client"].startswith("10.99.1.2:") and r["bytes_down"]>64*2**20 and r["bytes_up"]>50 and r["end"]=="closed" and r["duration_ms"]>=0'
check "IPv6 download recorded" e2e_record \
    'r["server"]=="[fd99:2::2]:80" and r["client"].startswith("[fd99:1::2]:") and r["bytes_down"]>64*2**20 and r["end"]=="closed"'
check "no connection left open" e2e_wait_tcp_drained 10
e2e_stop_appliance
check "routing rules removed at exit" bash -c "! ip netns exec $NS_A ip rule | grep -q 'lookup 200'"
e2e_pass
