#!/bin/busybox sh
# /init of the real-KVM VM test (packed by `cargo xtask vm-test`; runs inside the QEMU/TCG guest).
# Loads kvm_amd, sets the kernel's own hist triggers on kvm_exit/kvm_entry, runs kvmprof while the
# exerciser guest runs, then prints every result between markers on the serial console:
#   ===KVMPROF-BEGIN <file>=== ... ===KVMPROF-END <file>===   and one ===KVMPROF-STATUS <ok|fail: why>===
# Three runs in one boot: the plain guest (files exercise.txt, kvmprof.json, kvm_*.hist; its result is
# the STATUS line) and then the Hyper-V guest (files hv_*; its result is hv_status.txt, checked by
# tests/tests/real_kvm_hyperv.rs, so a Hyper-V failure does not hide the plain run's numbers).
# Between them, the perf run: `perf kvm stat record -a` and `kvmprof record` on the same exerciser
# (files perf_*, p.kvmprof; checked by tests/tests/real_kvm_perf.rs), and the slow-exit run (files
# slow_*; checked by tests/tests/real_kvm_slow.rs).
# Then the degrade run: kvmprof reads the tracepoints from a tracefs view without kvm_msr, as on a
# kernel that lacks it (files dg_*, tracepoints.txt; checked by tests/tests/real_kvm_tracepoints.rs).
# Kernel command line: kvmprof.iters=N, kvmprof.hyperv=0 skips the Hyper-V run.
/bin/busybox --install -s /bin
echo
export PATH=/bin
ulimit -l unlimited 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp
T=/sys/kernel/tracing
N=$(sed -n 's/.*kvmprof\.iters=\([0-9]*\).*/\1/p' /proc/cmdline)
N=${N:-2000}
VM_NAME=kvmprof-exerciser
HV_NAME=kvmprof-hyperv
# What the Hyper-V exerciser's VM amounts to, as a QEMU -cpu: a typical Windows VM without hv-avic.
HV_CPU=host,hv-relaxed,hv-vapic,hv-time,hv-vpindex,hv-synic,hv-stimer
HV=$(sed -n 's/.*kvmprof\.hyperv=\([01]\).*/\1/p' /proc/cmdline)
HV=${HV:-1}
T_BOOT=$(cut -d' ' -f1 /proc/uptime)

section() { # name file
  echo "===KVMPROF-BEGIN $1==="
  cat "$2" 2>&1
  echo
  echo "===KVMPROF-END $1==="
}
finish() { # status
  {
    echo "kernel=$(uname -r)"
    echo "iters=$N"
    echo "uptime_at_init_s=$T_BOOT"
    echo "uptime_at_end_s=$(cut -d' ' -f1 /proc/uptime)"
    for p in npt nested avic nrips; do
      [ -f /sys/module/kvm_amd/parameters/$p ] && echo "kvm_amd.$p=$(cat /sys/module/kvm_amd/parameters/$p)"
    done
  } > /tmp/info.txt
  section info.txt /tmp/info.txt
  for f in exercise.txt kvmprof.json kvmprof.stderr kvm_exit.hist kvm_entry.hist tracepoints.txt $SESSION_FILES $PERF_FILES $SLOW_FILES $SCHED_FILES $DG_FILES $HV_FILES; do
    [ -f /tmp/$f ] && section $f /tmp/$f
  done
  # Recordings are binary: base64 over the serial console, decoded by the harness.
  for f in a.kvmprof b.kvmprof p.kvmprof perf.data; do
    [ -f /tmp/$f ] && { base64 /tmp/$f > /tmp/$f.b64; section $f.b64 /tmp/$f.b64; }
  done
  if [ "$1" != ok ]; then
    dmesg | tail -40 > /tmp/dmesg.txt
    section dmesg.txt /tmp/dmesg.txt
  fi
  echo "===KVMPROF-STATUS $1==="
  poweroff -f
}

SESSION_FILES="session_status.txt b_exercise.txt record_a.stderr record_b.stderr b_kvm_exit.hist"
HV_FILES="hv_status.txt hv_exercise.txt hv_kvmprof.json hv_kvmprof.stderr hv_advise.json hv_advise.stderr
  hv_kvm_exit.hist hv_kvm_entry.hist hv_kvm_msr.hist hv_synic_msr.hist hv_stimer.hist hv_inhibit.hist
  hv_trigger_errors.txt"

PERF_FILES="perf_status.txt perf_version.txt perf_pid.txt perf_exercise.txt perf_record.stderr
  perf_kvmprof.stderr perf_vmexit.txt perf_ioport.txt perf_msr.txt perf_mmio.txt perf_kvm_exit.hist"

DG_FILES="dg_status.txt dg_exercise.txt dg_kvmprof.json dg_kvmprof.stderr dg_kvm_exit.hist"

hv_fail() { # why
  echo "fail: $1" > /tmp/hv_status.txt
}
trig() { # event spec: (re)create the event's hist trigger `spec`, so its counts start at zero
  echo "!$2" > $T/events/kvm/$1/trigger 2>/dev/null
  echo "$2" > $T/events/kvm/$1/trigger && echo 1 > $T/events/kvm/$1/enable && return 0
  { echo "== $1: $2"; cat $T/error_log; cat $T/events/kvm/$1/format; } >> /tmp/hv_trigger_errors.txt 2>&1
  return 1
}
wait_ready() { # pid file what
  i=0
  while [ ! -e "$2" ]; do
    kill -0 $1 2>/dev/null || { hv_fail "$3 exited before it was ready"; return 1; }
    i=$((i + 1))
    [ $i -gt 1200 ] && { hv_fail "$3 not ready after 120 s"; return 1; }
    sleep 0.1
  done
}
# The Hyper-V run: kvmprof report and advise (concurrently) while the Hyper-V guest runs, with
# the kernel's hist triggers as the oracle (kvm_msr by ecx,write; kvm_hv_synic_set_msr by msr).
hyperv_run() {
  echo "ok" > /tmp/hv_status.txt
  trig kvm_exit 'hist:keys=isa,exit_reason:sort=exit_reason' || { hv_fail "kvm_exit hist trigger"; return; }
  trig kvm_entry 'hist:keys=vcpu_id' || { hv_fail "kvm_entry hist trigger"; return; }
  trig kvm_msr 'hist:keys=ecx,write:sort=ecx' || { hv_fail "kvm_msr hist trigger"; return; }
  trig kvm_hv_synic_set_msr 'hist:keys=msr,data,host:sort=msr' || { hv_fail "kvm_hv_synic_set_msr hist trigger"; return; }
  trig kvm_hv_stimer_expiration 'hist:keys=timer_index,direct,msg_send_result' || hv_fail "kvm_hv_stimer_expiration hist trigger"
  trig kvm_apicv_inhibit_changed 'hist:keys=reason,set' 2>/dev/null || echo "no kvm_apicv_inhibit_changed event" > /tmp/hv_inhibit.hist
  /bin/kvmprof report --allow-concurrent -i 100ms --until-signal --format json --ready-file /tmp/hv_ready \
    > /tmp/hv_kvmprof.json 2> /tmp/hv_kvmprof.stderr &
  HKP=$!
  wait_ready $HKP /tmp/hv_ready "kvmprof report" || return
  HAP=
  if /bin/kvmprof advise --help > /dev/null 2>&1; then
    /bin/kvmprof advise --allow-concurrent -i 100ms --until-signal --format json --ready-file /tmp/hv_ready2 \
      > /tmp/hv_advise.json 2> /tmp/hv_advise.stderr &
    HAP=$!
    wait_ready $HAP /tmp/hv_ready2 "kvmprof advise" || return
  else
    echo "this kvmprof has no advise subcommand" > /tmp/hv_advise.stderr
  fi
  timeout 120 /bin/kvmprof exercise --ops h --iters "$N" -- -name guest=$HV_NAME -cpu $HV_CPU \
    > /tmp/hv_exercise.txt 2>&1
  HEX=$?
  kill -INT $HKP
  wait $HKP
  HKRC=$?
  HARC=0
  if [ -n "$HAP" ]; then
    kill -INT $HAP
    wait $HAP
    HARC=$?
  fi
  for e in kvm_exit kvm_entry kvm_msr kvm_hv_synic_set_msr kvm_hv_stimer_expiration kvm_apicv_inhibit_changed; do
    echo 0 > $T/events/kvm/$e/enable 2>/dev/null
  done
  cat $T/events/kvm/kvm_exit/hist > /tmp/hv_kvm_exit.hist
  cat $T/events/kvm/kvm_entry/hist > /tmp/hv_kvm_entry.hist
  cat $T/events/kvm/kvm_msr/hist > /tmp/hv_kvm_msr.hist
  cat $T/events/kvm/kvm_hv_synic_set_msr/hist > /tmp/hv_synic_msr.hist
  cat $T/events/kvm/kvm_hv_stimer_expiration/hist > /tmp/hv_stimer.hist
  [ -f /tmp/hv_inhibit.hist ] || cat $T/events/kvm/kvm_apicv_inhibit_changed/hist > /tmp/hv_inhibit.hist
  [ $HEX -eq 0 ] || { hv_fail "kvmprof exercise --ops h exited with status $HEX"; return; }
  [ $HKRC -eq 0 ] || { hv_fail "kvmprof report exited with status $HKRC"; return; }
  [ $HARC -eq 0 ] || { hv_fail "kvmprof advise exited with status $HARC"; return; }
}

# Session B: a different exit mix (port writes and cpuid only, twice as many loops), recorded,
# with its own hist trigger, for the diff test.
session_b() {
  echo '!hist:keys=isa,exit_reason:sort=exit_reason' > $T/events/kvm/kvm_exit/trigger 2>/dev/null
  echo 'hist:keys=isa,exit_reason:sort=exit_reason' > $T/events/kvm/kvm_exit/trigger
  echo 1 > $T/events/kvm/kvm_exit/enable
  /bin/kvmprof record --allow-concurrent -i 100ms -o /tmp/b.kvmprof --ready-file /tmp/ready_b 2> /tmp/record_b.stderr &
  RB=$!
  i=0
  while [ ! -e /tmp/ready_b ] && kill -0 $RB 2>/dev/null && [ $i -lt 1200 ]; do i=$((i + 1)); sleep 0.1; done
  /bin/kvmprof exercise --iters $((N * 2)) --ops oc -- -name guest=$VM_NAME-b > /tmp/b_exercise.txt 2>&1
  echo "exercise b: exit $?" >> /tmp/session_status.txt
  kill -INT $RB
  wait $RB
  echo "record b: exit $?" >> /tmp/session_status.txt
  echo 0 > $T/events/kvm/kvm_exit/enable
  cat $T/events/kvm/kvm_exit/hist > /tmp/b_kvm_exit.hist
}

# The perf run: `perf kvm stat record -a` and `kvmprof record` both attached before the exerciser
# starts and stopped after it ended, so both see every exit of its whole life; then perf's own
# report of each --event, for the exerciser's pid. The hist trigger on kvm_exit is the oracle.
perf_fail() { # why
  echo "fail: $1" > /tmp/perf_status.txt
}
perf_run() {
  echo ok > /tmp/perf_status.txt
  perf --version > /tmp/perf_version.txt 2>&1 || { perf_fail "no perf in the initramfs"; return; }
  mkdir -p /tmp/perf
  mkfifo /tmp/perf/ctl /tmp/perf/ack
  trig kvm_exit 'hist:keys=isa,exit_reason:sort=exit_reason' || { perf_fail "kvm_exit hist trigger"; return; }
  # -D -1: perf starts with its events disabled, enables them on `enable` and answers `ack`.
  # -k mono: perf stamps its events with CLOCK_MONOTONIC, kvmprof's clock (bpf_ktime_get_ns).
  # perf's default, sched_clock, counts the TSC at the rate calibrated at boot, which under TCG
  # can be a quarter off when the clocksource is another (6.1 here runs on hpet).
  ( cd /tmp/perf && exec perf kvm stat record -a -k mono -D -1 --control fifo:/tmp/perf/ctl,/tmp/perf/ack \
      > /tmp/perf/record.stdout 2> /tmp/perf_record.stderr ) &
  PP=$!
  timeout 120 sh -c 'echo enable > /tmp/perf/ctl; read -r a < /tmp/perf/ack; echo "$a" > /tmp/perf/acked'
  grep -q ack /tmp/perf/acked 2>/dev/null || { kill -INT $PP; wait $PP; perf_fail "perf kvm stat record did not enable its events"; return; }
  /bin/kvmprof record --allow-concurrent -i 100ms -o /tmp/p.kvmprof --ready-file /tmp/ready_p \
    2> /tmp/perf_kvmprof.stderr &
  RP=$!
  wait_ready $RP /tmp/ready_p "kvmprof record" || { kill -INT $PP; wait $PP; perf_fail "kvmprof record not ready"; return; }
  /bin/kvmprof exercise --iters "$N" --ops ocrw -- -name guest=$VM_NAME-perf > /tmp/perf_exercise.txt 2>&1 &
  XP=$!
  echo $XP > /tmp/perf_pid.txt
  wait $XP
  XRC=$?
  kill -INT $RP
  wait $RP
  RRC=$?
  kill -INT $PP
  wait $PP
  PRC=$?
  echo 0 > $T/events/kvm/kvm_exit/enable
  cat $T/events/kvm/kvm_exit/hist > /tmp/perf_kvm_exit.hist
  # --stdio exists from perf 6.4 on (with its report screen); older perf prints only text, and
  # on stderr: both streams are what a user sees, so both go to the file.
  STDIO=--stdio
  ( cd /tmp/perf && perf kvm -i perf.data.guest stat report --stdio > /dev/null 2>&1 ) || STDIO=
  for ev in vmexit ioport msr mmio; do
    ( cd /tmp/perf && perf kvm -i perf.data.guest stat report $STDIO --event $ev --pid $XP \
        > /tmp/perf_$ev.txt 2>&1 )
  done
  # perf's recording itself, for the host's perf 6.12 report screen (xtask/src/perf612.rs).
  cp /tmp/perf/perf.data.guest /tmp/perf.data 2>/dev/null
  [ $XRC -eq 0 ] || { perf_fail "kvmprof exercise exited with status $XRC"; return; }
  [ $RRC -eq 0 ] || { perf_fail "kvmprof record exited with status $RRC"; return; }
  # perf record ends by re-raising the SIGINT it was stopped with: 130 is its normal end.
  [ $PRC -eq 0 ] || [ $PRC -eq 130 ] || { perf_fail "perf kvm stat record exited with status $PRC"; return; }
}

# The slow-exit run: `kvmprof record --slow 1ms` while the VMM delays every 50th port write by
# 3 ms; the oracle is the kernel's own latency of every kvm_exit -> kvm_entry pair of at least 1 ms
# (a synthetic event from two hist triggers, trace clock mono = bpf_ktime_get_ns), by reason.
SLOW_FILES="slow_status.txt slow_exercise.txt slow_record.stderr slow_report.json slow_report.stderr
  slow_perf_live.txt slow_lat.hist slow_trigger_errors.txt"
slow_fail() { # why
  echo "fail: $1" > /tmp/slow_status.txt
}
slow_run() {
  echo ok > /tmp/slow_status.txt
  echo mono > $T/trace_clock
  echo 'kvm_slow u64 lat; unsigned int reason' >> $T/synthetic_events 2>> /tmp/slow_trigger_errors.txt \
    || { slow_fail "synthetic event"; return; }
  echo 'hist:keys=common_pid:ts0=common_timestamp.usecs:r=exit_reason' >> $T/events/kvm/kvm_exit/trigger \
    2>> /tmp/slow_trigger_errors.txt || { cat $T/error_log >> /tmp/slow_trigger_errors.txt; slow_fail "kvm_exit latency trigger"; return; }
  echo 'hist:keys=common_pid:lat=common_timestamp.usecs-$ts0:onmatch(kvm.kvm_exit).trace(kvm_slow,$lat,$r)' \
    >> $T/events/kvm/kvm_entry/trigger 2>> /tmp/slow_trigger_errors.txt \
    || { cat $T/error_log >> /tmp/slow_trigger_errors.txt; slow_fail "kvm_entry latency trigger"; return; }
  echo 'hist:keys=reason,lat:sort=lat:size=8192 if lat >= 1000' > $T/events/synthetic/kvm_slow/trigger \
    2>> /tmp/slow_trigger_errors.txt || { cat $T/error_log >> /tmp/slow_trigger_errors.txt; slow_fail "kvm_slow hist"; return; }
  echo 1 > $T/events/kvm/kvm_exit/enable
  echo 1 > $T/events/kvm/kvm_entry/enable
  /bin/kvmprof record --allow-concurrent -i 100ms --slow 1ms -o /tmp/s.kvmprof --ready-file /tmp/ready_s \
    2> /tmp/slow_record.stderr &
  RS=$!
  wait_ready $RS /tmp/ready_s "kvmprof record --slow" || { slow_fail "kvmprof record not ready"; return; }
  /bin/kvmprof exercise --iters "$N" --ops ocrw --delay-every 50 --delay-for 3ms -- -name guest=$VM_NAME-slow \
    > /tmp/slow_exercise.txt 2>&1
  XRC=$?
  kill -INT $RS
  wait $RS
  RRC=$?
  echo 0 > $T/events/kvm/kvm_exit/enable
  echo 0 > $T/events/kvm/kvm_entry/enable
  cat $T/events/synthetic/kvm_slow/hist > /tmp/slow_lat.hist
  # Take the triggers down (users first), so the later runs' kvm_exit/kvm_entry hists are their own.
  echo '!hist:keys=reason,lat:sort=lat:size=8192 if lat >= 1000' >> $T/events/synthetic/kvm_slow/trigger
  echo '!hist:keys=common_pid:lat=common_timestamp.usecs-$ts0:onmatch(kvm.kvm_exit).trace(kvm_slow,$lat,$r)' \
    >> $T/events/kvm/kvm_entry/trigger
  echo '!hist:keys=common_pid:ts0=common_timestamp.usecs:r=exit_reason' >> $T/events/kvm/kvm_exit/trigger
  echo '!kvm_slow' >> $T/synthetic_events
  grep -q common_pid $T/events/kvm/kvm_exit/trigger $T/events/kvm/kvm_entry/trigger \
    && { slow_fail "the latency triggers could not be removed"; return; }
  echo local > $T/trace_clock
  /bin/kvmprof report --slow 1ms -f json /tmp/s.kvmprof > /tmp/slow_report.json 2> /tmp/slow_report.stderr
  SRC=$?
  /bin/kvmprof report --slow 1ms -f perf-live /tmp/s.kvmprof > /tmp/slow_perf_live.txt 2>> /tmp/slow_report.stderr
  [ $XRC -eq 0 ] || { slow_fail "kvmprof exercise exited with status $XRC"; return; }
  [ $RRC -eq 0 ] || { slow_fail "kvmprof record exited with status $RRC"; return; }
  [ $SRC -eq 0 ] || { slow_fail "kvmprof report --slow exited with status $SRC"; return; }
}

# The scheduler-split run: the exerciser's vCPU thread shares guest CPU 1 with a busy thread
# (--hog-cpu) and sleeps 3 ms before completing every 50th port write; kvmprof record splits each
# exit's time. Checked by tests/tests/real_kvm_sched.rs against the vCPU thread's own schedstat
# (RESULT run_delay_ns) and the VMM's sleeps.
SCHED_FILES="sched_status.txt sched_exercise.txt sched_record.stderr sched_report.json sched_slow.json
  sched_report.stderr sched_check.json"
sched_fail() { # why
  echo "fail: $1" > /tmp/sched_status.txt
}
sched_run() {
  echo ok > /tmp/sched_status.txt
  /bin/kvmprof record --allow-concurrent -i 100ms --slow 1ms -o /tmp/h.kvmprof --ready-file /tmp/ready_h \
    2> /tmp/sched_record.stderr &
  RH=$!
  wait_ready $RH /tmp/ready_h "kvmprof record (sched)" || { sched_fail "kvmprof record not ready"; return; }
  /bin/kvmprof exercise --iters "$N" --ops ocrw --delay-every 50 --delay-for 3ms --hog-cpu 1 \
    -- -name guest=$VM_NAME-sched > /tmp/sched_exercise.txt 2>&1
  XRC=$?
  kill -INT $RH
  wait $RH
  RRC=$?
  /bin/kvmprof report -f json /tmp/h.kvmprof > /tmp/sched_report.json 2> /tmp/sched_report.stderr
  SRC=$?
  /bin/kvmprof report --slow 1ms -f json /tmp/h.kvmprof > /tmp/sched_slow.json 2>> /tmp/sched_report.stderr
  # Exit status 1 (the limit is exceeded) or 0; the test compares the JSON with the report's.
  /bin/kvmprof check /tmp/h.kvmprof --vm $VM_NAME-sched -t max_wait_pct=1 -t io.max_wait_pct=1 \
    -f json > /tmp/sched_check.json 2>> /tmp/sched_report.stderr
  [ $XRC -eq 0 ] || { sched_fail "kvmprof exercise exited with status $XRC"; return; }
  [ $RRC -eq 0 ] || { sched_fail "kvmprof record exited with status $RRC"; return; }
  [ $SRC -eq 0 ] || { sched_fail "kvmprof report exited with status $SRC"; return; }
}

# The degrade run: a copy of the kvm events' format files (and sys_enter_ioctl's) without kvm_msr
# as kvmprof's --tracefs. It attaches through the real tracefs, so it runs as on a kernel that has
# every tracepoint but kvm_msr: the exits must still be counted exactly, and it must say what it lost.
degrade_run() {
  echo ok > /tmp/dg_status.txt
  D=/tmp/tfs/events
  for e in $T/events/kvm/* $T/events/syscalls/sys_enter_ioctl; do
    [ -f $e/format ] || continue
    n=${e#$T/events/}
    [ $n = kvm/kvm_msr ] && continue
    mkdir -p $D/$n && cat $e/format > $D/$n/format && cat $e/id > $D/$n/id
  done
  trig kvm_exit 'hist:keys=isa,exit_reason:sort=exit_reason' || { echo "fail: kvm_exit hist trigger" > /tmp/dg_status.txt; return; }
  /bin/kvmprof report --allow-concurrent --tracefs /tmp/tfs -i 100ms --until-signal --format json \
    --ready-file /tmp/ready_dg > /tmp/dg_kvmprof.json 2> /tmp/dg_kvmprof.stderr &
  DP=$!
  i=0
  while [ ! -e /tmp/ready_dg ] && kill -0 $DP 2>/dev/null && [ $i -lt 1200 ]; do i=$((i + 1)); sleep 0.1; done
  /bin/kvmprof exercise --iters "$N" --ops ocrw -- -name guest=$VM_NAME-dg > /tmp/dg_exercise.txt 2>&1
  DX=$?
  kill -INT $DP
  wait $DP
  DRC=$?
  echo 0 > $T/events/kvm/kvm_exit/enable
  cat $T/events/kvm/kvm_exit/hist > /tmp/dg_kvm_exit.hist
  [ $DX -eq 0 ] || { echo "fail: kvmprof exercise exited with status $DX" > /tmp/dg_status.txt; return; }
  [ $DRC -eq 0 ] || echo "fail: kvmprof report --tracefs exited with status $DRC" > /tmp/dg_status.txt
}

for m in irqbypass ccp kvm kvm-amd; do
  insmod /lib/modules/$m.ko 2>/tmp/insmod.err || finish "fail: insmod $m: $(cat /tmp/insmod.err)"
done
[ -c /dev/kvm ] || finish "fail: /dev/kvm missing after insmod kvm-amd (does the QEMU CPU have svm?)"

# The tracepoints this kernel has, as kvmprof names them (category:event).
for e in $T/events/kvm/* $T/events/syscalls/sys_enter_ioctl; do
  [ -d $e ] && echo "${e#$T/events/}" | sed 's,/,:,'
done > /tmp/tracepoints.txt

echo 'hist:keys=isa,exit_reason:sort=exit_reason' > $T/events/kvm/kvm_exit/trigger || finish "fail: kvm_exit hist trigger"
echo 'hist:keys=vcpu_id' > $T/events/kvm/kvm_entry/trigger || finish "fail: kvm_entry hist trigger"
echo 1 > $T/events/kvm/kvm_exit/enable
echo 1 > $T/events/kvm/kvm_entry/enable

/bin/kvmprof report -i 100ms --until-signal --format json --ready-file /tmp/ready > /tmp/kvmprof.json 2> /tmp/kvmprof.stderr &
KP=$!
i=0
while [ ! -e /tmp/ready ]; do
  kill -0 $KP 2>/dev/null || finish "fail: kvmprof report exited before it was ready"
  i=$((i + 1))
  [ $i -gt 1200 ] && finish "fail: kvmprof report not ready after 120 s"
  sleep 0.1
done

# Session A: the same run recorded (sessions: record → replay/report/diff on the host).
/bin/kvmprof record --allow-concurrent -i 100ms -o /tmp/a.kvmprof --ready-file /tmp/ready_a 2> /tmp/record_a.stderr &
RA=$!
i=0
while [ ! -e /tmp/ready_a ] && kill -0 $RA 2>/dev/null && [ $i -lt 1200 ]; do i=$((i + 1)); sleep 0.1; done

/bin/kvmprof exercise --iters "$N" --ops ocrw -- -name guest=$VM_NAME > /tmp/exercise.txt 2>&1
EX=$?

kill -INT $KP
wait $KP
KRC=$?
kill -INT $RA
wait $RA
echo "record a: exit $?" > /tmp/session_status.txt
echo 0 > $T/events/kvm/kvm_exit/enable
echo 0 > $T/events/kvm/kvm_entry/enable
cat $T/events/kvm/kvm_exit/hist > /tmp/kvm_exit.hist
cat $T/events/kvm/kvm_entry/hist > /tmp/kvm_entry.hist

[ $EX -eq 0 ] || finish "fail: kvmprof exercise exited with status $EX"
[ $KRC -eq 0 ] || finish "fail: kvmprof report exited with status $KRC"
session_b
perf_run
slow_run
sched_run
degrade_run
[ "$HV" = 1 ] && hyperv_run
finish ok
