#!/bin/busybox sh
# /init of the real-KVM VM test (packed by `cargo xtask vm-test`; runs inside the QEMU/TCG guest).
# Loads kvm_amd, sets the kernel's own hist triggers on kvm_exit/kvm_entry, runs kvmprof while the
# exerciser guest runs, then prints every result between markers on the serial console:
#   ===KVMPROF-BEGIN <file>=== ... ===KVMPROF-END <file>===   and one ===KVMPROF-STATUS <ok|fail: why>===
/bin/busybox --install -s /bin
echo
export PATH=/bin
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
  for f in exercise.txt kvmprof.json kvmprof.stderr kvm_exit.hist kvm_entry.hist; do
    [ -f /tmp/$f ] && section $f /tmp/$f
  done
  if [ "$1" != ok ]; then
    dmesg | tail -40 > /tmp/dmesg.txt
    section dmesg.txt /tmp/dmesg.txt
  fi
  echo "===KVMPROF-STATUS $1==="
  poweroff -f
}

for m in irqbypass ccp kvm kvm-amd; do
  insmod /lib/modules/$m.ko 2>/tmp/insmod.err || finish "fail: insmod $m: $(cat /tmp/insmod.err)"
done
[ -c /dev/kvm ] || finish "fail: /dev/kvm missing after insmod kvm-amd (does the QEMU CPU have svm?)"

echo 'hist:keys=isa,exit_reason:sort=exit_reason' > $T/events/kvm/kvm_exit/trigger || finish "fail: kvm_exit hist trigger"
echo 'hist:keys=vcpu_id' > $T/events/kvm/kvm_entry/trigger || finish "fail: kvm_entry hist trigger"
echo 1 > $T/events/kvm/kvm_exit/enable
echo 1 > $T/events/kvm/kvm_entry/enable

/bin/kvmprof report --until-signal --format json --ready-file /tmp/ready > /tmp/kvmprof.json 2> /tmp/kvmprof.stderr &
KP=$!
i=0
while [ ! -e /tmp/ready ]; do
  kill -0 $KP 2>/dev/null || finish "fail: kvmprof report exited before it was ready"
  i=$((i + 1))
  [ $i -gt 1200 ] && finish "fail: kvmprof report not ready after 120 s"
  sleep 0.1
done

/bin/kvmprof exercise --iters "$N" --ops ocrw -- -name guest=$VM_NAME > /tmp/exercise.txt 2>&1
EX=$?

kill -INT $KP
wait $KP
KRC=$?
echo 0 > $T/events/kvm/kvm_exit/enable
echo 0 > $T/events/kvm/kvm_entry/enable
cat $T/events/kvm/kvm_exit/hist > /tmp/kvm_exit.hist
cat $T/events/kvm/kvm_entry/hist > /tmp/kvm_entry.hist

[ $EX -eq 0 ] || finish "fail: kvmprof exercise exited with status $EX"
[ $KRC -eq 0 ] || finish "fail: kvmprof report exited with status $KRC"
finish ok
