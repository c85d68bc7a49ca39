#!/bin/busybox sh
# /init of the real-KVM overhead benchmark (packed by `cargo xtask bench-vm`; runs inside the
# QEMU/TCG guest with nested AMD SVM). Measures, in one boot:
#  impact: the exerciser guest's elapsed time with nothing attached, with `kvmprof report`, with
#          `perf kvm stat record -a` and with a bpftrace exit→entry histogram script, ROUNDS rounds
#          in rotating order; each profiler's own CPU time (whole lifetime, and during the guest
#          run) and the bytes it wrote; perf's `perf kvm stat report` CPU time.
#  loss:   two exercisers at once (in-kernel exits only: the highest rate the harness reaches),
#          once per tool, with the kernel's hist trigger on kvm_exit as the oracle.
#  profile: where kvmprof's own CPU goes during three exerciser runs (perf record of its process).
# Every measurement is one `RUN key=value ...` line in results.txt; outputs come back between
#   ===KVMPROF-BEGIN <file>=== ... ===KVMPROF-END <file>===   and one ===KVMPROF-STATUS <ok|fail: why>===
# Kernel command line: kvmprof.iters=N kvmprof.rounds=R kvmprof.tools="none kvmprof perf bpftrace".
/bin/busybox --install -s /bin
echo
export PATH=/bin:/usr/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp
ulimit -l unlimited 2>/dev/null
T=/sys/kernel/tracing
arg() { sed -n "s/.*kvmprof\.$1=\([0-9a-z,]*\).*/\1/p" /proc/cmdline; }
N=$(arg iters)
N=${N:-10000}
ROUNDS=$(arg rounds)
ROUNDS=${ROUNDS:-7}
TOOLS=$(arg tools | tr ',' ' ')
TOOLS=${TOOLS:-none kvmprof perf bpftrace}
R=/tmp/results.txt
: > $R

section() { # name file
  echo "===KVMPROF-BEGIN $1==="
  cat "$2" 2>&1
  echo
  echo "===KVMPROF-END $1==="
}
finish() { # status
  {
    echo "kernel=$(uname -r)"
    echo "iters=$N rounds=$ROUNDS tools=$TOOLS"
    echo "cpus=$(grep -c ^processor /proc/cpuinfo)"
    echo "uptime_at_end_s=$(cut -d' ' -f1 /proc/uptime)"
    echo "perf=$(perf --version 2>&1)"
    echo "bpftrace=$(bpftrace --version 2>&1)"
  } > /tmp/info.txt
  section info.txt /tmp/info.txt
  section results.txt $R
  for f in /tmp/keep/*; do
    [ -f "$f" ] && section "$(basename "$f")" "$f"
  done
  if [ "$1" != ok ]; then
    dmesg | tail -40 > /tmp/dmesg.txt
    section dmesg.txt /tmp/dmesg.txt
  fi
  echo "===KVMPROF-STATUS $1==="
  poweroff -f
}

ticks() { # pid: utime+stime in clock ticks (comm has no spaces for our tools)
  awk '{print $14 + $15}' /proc/$1/stat 2>/dev/null || echo 0
}
run_ns() { # pid: CPU time of all its threads in ns (schedstat's first field), 0 when gone
  cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}
times_s() { # file written by `times`: children user+sys seconds (line 2)
  awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1" 2>/dev/null
}
fsize() { # bytes of the file, 0 when missing
  if [ -f "$1" ]; then wc -c < "$1" | tr -d ' '; else echo 0; fi
}

# Start tool $1 in the background, its own output under /tmp/run/; sets TP (the tool's pid) and
# returns once it is attached (or 1 when it did not get ready). A wrapper subshell waits for the
# tool and writes `times` (the tool's whole-lifetime CPU time) to /tmp/run/tool.times.
start_tool() {
  TP=
  case $1 in
  none) return 0 ;;
  kvmprof)
    ( /bin/kvmprof report --until-signal --format json --ready-file /tmp/run/ready \
        > /tmp/run/out 2> /tmp/run/err &
      echo $! > /tmp/run/pid; wait $!; echo $? > /tmp/run/rc; times > /tmp/run/tool.times ) &
    ;;
  kvmprof-empty) # the test object's field-reading empty programs (tests/src/bin/kvmprof-empty.rs)
    ( /bin/kvmprof-empty /tmp/run/ready > /tmp/run/out 2> /tmp/run/err &
      echo $! > /tmp/run/pid; wait $!; echo $? > /tmp/run/rc; times > /tmp/run/tool.times ) &
    ;;
  perf)
    mkfifo /tmp/run/ctl /tmp/run/ack
    ( cd /tmp/run && perf kvm stat record -a -D -1 --control fifo:/tmp/run/ctl,/tmp/run/ack \
        > /tmp/run/out 2> /tmp/run/err &
      echo $! > /tmp/run/pid; wait $!; echo $? > /tmp/run/rc; times > /tmp/run/tool.times ) &
    ;;
  bpftrace)
    ( bpftrace /bench/kvmexit.bt > /tmp/run/out 2> /tmp/run/err &
      echo $! > /tmp/run/pid; wait $!; echo $? > /tmp/run/rc; times > /tmp/run/tool.times ) &
    ;;
  esac
  i=0
  while [ ! -s /tmp/run/pid ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
  TP=$(cat /tmp/run/pid 2>/dev/null)
  [ -n "$TP" ] || return 1
  i=0
  case $1 in
  kvmprof|kvmprof-empty)
    while [ ! -e /tmp/run/ready ]; do
      kill -0 $TP 2>/dev/null || return 1
      i=$((i + 1)); [ $i -gt 3000 ] && return 1
      sleep 0.1
    done
    ;;
  perf)
    # -D -1: events start disabled; `enable` on the control fifo, perf answers `ack` once enabled.
    timeout 300 sh -c 'echo enable > /tmp/run/ctl; read -r a < /tmp/run/ack; echo "$a" > /tmp/run/acked'
    grep -q ack /tmp/run/acked 2>/dev/null || return 1
    ;;
  bpftrace)
    # "Attaching N probes..." comes once the program is compiled, just before the attach; then
    # wait until the process's perf_event fds (output buffers, probes) stop changing for 1 s —
    # bpftrace has no ready signal (its BEGIN probe fires before the other probes attach).
    prev=-1 same=0
    while :; do
      kill -0 $TP 2>/dev/null || return 1
      if grep -q Attaching /tmp/run/out 2>/dev/null; then
        n=$(ls -l /proc/$TP/fd 2>/dev/null | grep -c perf_event)
        if [ "$n" -ge 2 ] && [ "$n" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        prev=$n
        [ $same -ge 10 ] && break
      fi
      i=$((i + 1)); [ $i -gt 3000 ] && return 1
      sleep 0.1
    done
    echo "perf_event_fds=$n" > /tmp/run/ready_fds
    sleep 0.5
    ;;
  esac
  return 0
}

# Stop the tool (SIGINT, SIGKILL after 300 s) and wait for its wrapper.
stop_tool() {
  [ -n "$TP" ] || return 0
  kill -INT $TP 2>/dev/null
  i=0
  while [ ! -e /tmp/run/tool.times ]; do
    i=$((i + 1))
    [ $i -eq 3000 ] && kill -KILL $TP 2>/dev/null
    [ $i -gt 3100 ] && break
    sleep 0.1
  done
  wait 2>/dev/null
}

# The count of exits the tool reports, and the bytes it wrote; perf: also post-processing.
tool_count() { # tool
  case $1 in
  kvmprof|kvmprof-empty) grep -m1 '"exits":' /tmp/run/out | tr -dc '0-9' ;;
  perf) # "Total Samples:N" (perf prints it on stderr, not always); else the Samples column's sum.
    t=$(sed -n 's/.*Total Samples:\([0-9]*\).*/\1/p' /tmp/run/report.txt | head -1)
    [ -n "$t" ] || t=$(awk '$2 ~ /^[0-9]+$/ && $3 ~ /%$/ { s += $2 } END { print s + 0 }' /tmp/run/report.txt)
    echo "$t" ;;
  bpftrace)
    awk '/^\[/ { for (i = 2; i <= NF; i++) if ($i ~ /^\|/) { s += $(i - 1); break } } END { print s + 0 }' /tmp/run/out ;;
  esac
}
# kvmprof's JSON probe_cost as " pc_<program>=<events>:<ns per event>" (BPF run-time stats).
probe_cost() {
  awk -F'[:,]' '/"name":/ { gsub(/[" ]/, "", $2); n = $2 }
    /"events":/ { gsub(/ /, "", $2); e = $2 }
    /"ns_per_event":/ { gsub(/ /, "", $2); printf " pc_%s=%s:%s", n, e, $2 }' /tmp/run/out
}
tool_bytes() {
  case $1 in
  perf) fsize /tmp/run/perf.data.guest ;;
  none) echo 0 ;;
  *) fsize /tmp/run/out ;;
  esac
}

# One measurement: phase round tool ops nexer
run_one() {
  ph=$1 rd=$2 tool=$3 ops=$4 nex=$5
  rm -rf /tmp/run
  mkdir -p /tmp/run
  extra=
  if ! start_tool $tool; then
    stop_tool
    echo "RUN phase=$ph round=$rd tool=$tool error=not_ready" >> $R
    mkdir -p /tmp/keep
    cat /tmp/run/err > /tmp/keep/${ph}_${tool}_notready.err 2>/dev/null
    cat /tmp/run/out > /tmp/keep/${ph}_${tool}_notready.out 2>/dev/null
    return
  fi
  if [ "$ph" = loss ]; then
    echo '!hist:keys=isa' > $T/events/kvm/kvm_exit/trigger 2>/dev/null
    echo 'hist:keys=isa' > $T/events/kvm/kvm_exit/trigger
    echo 1 > $T/events/kvm/kvm_exit/enable
  fi
  t0=0 n0=0
  [ -n "$TP" ] && t0=$(ticks $TP) && n0=$(run_ns $TP)
  EXP=
  j=1
  while [ $j -le $nex ]; do
    timeout 300 /bin/kvmprof exercise --iters "$N" --ops $ops -- -name guest=bench-$j \
      > /tmp/run/ex$j.txt 2>&1 &
    EXP="$EXP $!"
    j=$((j + 1))
  done
  for p in $EXP; do wait $p; done
  sleep 0.2
  t1=0 n1=0
  [ -n "$TP" ] && t1=$(ticks $TP) && n1=$(run_ns $TP)
  if [ "$ph" = loss ]; then
    echo 0 > $T/events/kvm/kvm_exit/enable
    hits=$(sed -n 's/^ *Hits: *\([0-9]*\).*/\1/p' $T/events/kvm/kvm_exit/hist)
    extra="$extra oracle=${hits:-0}"
    cp $T/events/kvm/kvm_exit/hist /tmp/run/oracle.hist
    echo '!hist:keys=isa' > $T/events/kvm/kvm_exit/trigger
  fi
  stop_tool
  if [ "$tool" = perf ]; then
    ( cd /tmp/run && timeout 300 perf kvm -i perf.data.guest stat report > /tmp/run/report.txt 2>&1; times > /tmp/run/report.times )
    extra="$extra post_cpu_s=$(times_s /tmp/run/report.times)"
  fi
  if [ "$tool" != none ]; then
    extra="$extra tool_cpu_s=$(times_s /tmp/run/tool.times) tool_run_ticks=$((t1 - t0)) tool_run_ns=$((n1 - n0)) tool_rc=$(cat /tmp/run/rc 2>/dev/null)"
    extra="$extra bytes=$(tool_bytes $tool) count=$(tool_count $tool)"
  fi
  case $tool in kvmprof*) extra="$extra$(probe_cost)" ;; esac
  j=1
  while [ $j -le $nex ]; do
    res=$(grep -m1 '^RESULT' /tmp/run/ex$j.txt)
    echo "RUN phase=$ph round=$rd tool=$tool ex=$j ${res#RESULT }$extra" >> $R
    [ -n "$res" ] || { mkdir -p /tmp/keep; cp /tmp/run/ex$j.txt /tmp/keep/${ph}_${rd}_${tool}_ex$j.txt; }
    j=$((j + 1))
  done
  # Keep the last impact round's and the loss phase's outputs for inspection.
  if [ "$rd" = "$ROUNDS" ] || [ "$ph" = loss ]; then
    mkdir -p /tmp/keep
    for f in out err report.txt oracle.hist ready_fds; do
      [ -f /tmp/run/$f ] && head -c 20000 /tmp/run/$f > /tmp/keep/${ph}_${tool}_$f
    done
  fi
}

for m in irqbypass ccp kvm kvm-amd; do
  insmod /lib/modules/$m.ko 2>/tmp/insmod.err || finish "fail: insmod $m: $(cat /tmp/insmod.err)"
done
[ -c /dev/kvm ] || finish "fail: /dev/kvm missing after insmod kvm-amd (does the QEMU CPU have svm?)"

# Warm-up (page cache, first-run effects) for the exerciser and each tool's binary.
rm -rf /tmp/run; mkdir -p /tmp/run
timeout 120 /bin/kvmprof exercise --iters 100 --ops ocrw -- -name guest=warmup > /dev/null 2>&1

r=1
while [ $r -le $ROUNDS ]; do
  # Rotate the order every round.
  set -- $TOOLS
  k=1
  while [ $k -lt $r ]; do t=$1; shift; set -- "$@" $t; k=$((k + 1)); done
  for t in "$@"; do
    echo "bench: round $r tool $t (uptime $(cut -d' ' -f1 /proc/uptime))"
    run_one impact $r $t ocrw 1
  done
  r=$((r + 1))
done
# In-kernel cost on real exits: kvmprof's programs vs field-reading empty ones, alternating.
case " $TOOLS " in *" kvmprof "*)
  r=1
  while [ $r -le 3 ]; do
    for t in kvmprof-empty kvmprof; do
      echo "bench: kcost round $r tool $t (uptime $(cut -d' ' -f1 /proc/uptime))"
      run_one kcost $r $t ocrw 1
    done
    r=$((r + 1))
  done ;;
esac
for t in $TOOLS; do
  echo "bench: loss tool $t (uptime $(cut -d' ' -f1 /proc/uptime))"
  run_one loss 1 $t crw 2
done
# Where kvmprof's own CPU goes while a VM runs (not a measured round: perf perturbs it): three
# exerciser runs under `perf record` of kvmprof's process, its report kept as
# kvmprof_profile.txt (self time by symbol) and kvmprof_profile_callers.txt (with callers).
case " $TOOLS " in *" kvmprof "*)
  echo "bench: profile of kvmprof (uptime $(cut -d' ' -f1 /proc/uptime))"
  rm -rf /tmp/run /tmp/prof; mkdir -p /tmp/run /tmp/prof /tmp/keep
  if start_tool kvmprof; then
    ( cd /tmp/prof && exec perf record -q -F 2999 --call-graph dwarf,16384 -p $TP -o /tmp/prof/p.data \
        > /tmp/prof/out 2>&1 ) &
    PRP=$!
    sleep 1
    for j in 1 2 3; do
      timeout 300 /bin/kvmprof exercise --iters "$N" --ops ocrw -- -name guest=bench-prof > /dev/null 2>&1
    done
    kill -INT $PRP; wait $PRP
    perf report -i /tmp/prof/p.data --stdio --no-inline --no-children --sort sym -g none --percent-limit 0.5 \
      > /tmp/keep/kvmprof_profile.txt 2>&1
    perf report -i /tmp/prof/p.data --stdio --no-inline --children --sort sym -g none --percent-limit 2 \
      > /tmp/keep/kvmprof_profile_callers.txt 2>&1
  else
    echo "kvmprof did not get ready" > /tmp/keep/kvmprof_profile.txt
  fi
  stop_tool ;;
esac
finish ok
