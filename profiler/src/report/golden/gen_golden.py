#!/usr/bin/env python3
"""Writes the golden files of src/report/tests_table.rs and tests_diff.rs from the fixtures'
numbers, independently of the Rust code: perf's print_result layout with Python's `%`
formatting (C printf rules), kvmprof's model arithmetic re-done by hand.

Run from this directory: python3 gen_golden.py
"""
import math

SUB_BITS, MAX_EXP = 3, 37
SUB = 1 << SUB_BITS
BUCKETS = SUB * (MAX_EXP - SUB_BITS + 1)


def bucket(v):
    if v < SUB:
        return v
    e = v.bit_length() - 1
    if e >= MAX_EXP:
        return BUCKETS - 1
    return (e - SUB_BITS + 1) * SUB + ((v >> (e - SUB_BITS)) & (SUB - 1))


def lower(b):
    if b < SUB:
        return b
    e = b // SUB + SUB_BITS - 1
    return (1 << e) + ((b % SUB) << (e - SUB_BITS))


def upper(b):
    return lower(b + 1) if b + 1 < BUCKETS else lower(b) * 2


VMX = {1: "EXTERNAL_INTERRUPT", 10: "CPUID", 12: "HLT", 30: "IO_INSTRUCTION",
       32: "MSR_WRITE", 49: "EPT_MISCONFIG"}
HLT = {12}

# (pid, vcpu, reason, n, ns) as in tests_table.rs::fixture; 10 s span.
FIXTURE = [
    (1234, 0, 32, 600, 2000), (1234, 1, 32, 400, 3000),
    (1234, 0, 49, 300, 5000), (1234, 1, 49, 200, 9000),
    (1234, 0, 12, 50, 1000000), (1234, 1, 30, 1, 12345),
    (1234, 0, 1, 150, 700),
    (2222, 0, 10, 250, 1500), (2222, 0, 32, 100, 2500),
]
VMS = {1234: "win11", 2222: "build-box"}
SECS = 10.0


class Row:
    def __init__(self, reason):
        self.reason, self.name, self.hlt = reason, VMX[reason], reason in HLT
        self.n, self.total, self.mn, self.mx, self.hist = 0, 0, None, None, {}

    def add(self, n, ns):
        self.n += n
        self.total += n * ns
        self.mn = ns if self.mn is None else min(self.mn, ns)
        self.mx = ns if self.mx is None else max(self.mx, ns)
        b = bucket(ns)
        self.hist[b] = self.hist.get(b, 0) + n

    @property
    def mean(self):
        return self.total / self.n

    def q(self, p):
        tot = sum(self.hist.values())
        rank = max(1, math.ceil(p * tot))
        seen = 0
        for b in sorted(self.hist):
            seen += self.hist[b]
            if seen >= rank:
                lo, hi = lower(b), upper(b)
                v = lo if hi - lo <= 1 else lo + (hi - lo) // 2
                return min(max(v, self.mn), self.mx)

    def rel_err(self):
        n = sum(self.hist.values())
        if n < 2:
            return 0.0
        ss = 0.0
        for b, c in sorted(self.hist.items()):
            lo, hi = lower(b), upper(b)
            mid = (lo + (max(hi, lo + 1) - 1)) / 2
            d = min(max(mid, self.mn), self.mx) - self.mean
            ss += c * d * d
        return 100.0 * math.sqrt(ss / (n - 1) / n) / self.mean


def rows(pred):
    out = {}
    for pid, vcpu, reason, n, ns in FIXTURE:
        if pred(pid, vcpu):
            out.setdefault(reason, Row(reason)).add(n, ns)
    return list(out.values())


def label(vm):
    # kvmprof's VM line goes before perf's "Analyze events" line of its table.
    return "# VM %s (pid %d)\n" % (VMS[vm], vm) if vm else ""


def perf_table(who, cpus, rs, sort, pcts, vm=None):
    o = "\n\n%sAnalyze events for %s%s\n\n" % (label(vm), who, cpus)
    h = "%*s %10s %9s %9s %11s %11s %16s " % (40, "VM-EXIT", "Samples", "Samples%", "Time%",
                                               "Min Time", "Max Time", "Avg time")
    if pcts:
        h = "%-122s" % h + "".join(" %11s" % p for p in ("p50", "p99", "p99.9"))
    o += h + "\n\n"
    rs = sorted(rs, key=lambda r: r.name)
    rs.sort(key=sort)
    tn = sum(r.n for r in rs)
    tt = sum(r.total for r in rs)
    for r in rs:
        o += "%*s %10u %8.2f%% %8.2f%% %9.2fus %9.2fus %9.2fus ( +-%7.2f%% )" % (
            40, r.name, r.n, r.n / tn * 100, r.total / tt * 100, r.mn / 1e3, r.mx / 1e3,
            r.total / r.n / 1e3, r.rel_err())
        if pcts:
            o += "".join(" %9.2fus" % (r.q(p) / 1e3) for p in (0.5, 0.99, 0.999))
        o += "\n"
    o += "\nTotal Samples:%u, Total events handled time:%.2fus.\n\n" % (tn, tt / 1e3)
    hn = sum(r.n for r in rs if r.hlt)
    ht = sum(r.total for r in rs if r.hlt)
    if hn:
        o += ("# HLT: %.2f%% of samples, %.2f%% of time (mostly guest idle); without HLT: "
              "Total Samples:%u, Total events handled time:%.2fus.\n") % (
            hn / tn * 100, ht / tt * 100, tn - hn, (tt - ht) / 1e3)
    return o


by_samples = lambda r: -r.n
by_time = lambda r: -r.total

out = perf_table("all VMs, ", "all VCPUs:", rows(lambda p, c: True), by_samples, False)
for pid in sorted(VMS):
    out += perf_table("pid(s) %d, " % pid, "all VCPUs:", rows(lambda p, c: p == pid),
                      by_samples, False, pid)
open("vmexit_all.txt", "w").write(out)

out = perf_table("pid(s) 1234, ", "VCPU 0:", rows(lambda p, c: p == 1234 and c == 0),
                 by_time, True, 1234)
open("vmexit_win11_vcpu0.txt", "w").write(out)

# Sub-reason tables: counts only.
EVID = [(1234, "0x6e0:W", "msr", 900), (1234, "0x830:W", "msr", 100),
        (1234, "0x1b:R", "msr", 50), (2222, "0x6e0:W", "msr", 100),
        (1234, "0x3f8:POUT", "ioport", 1), (1234, "0xfee000b0:W", "mmio", 7)]
HEAD = {"msr": "MSR Access", "ioport": "IO Port Access", "mmio": "MMIO Access"}
WHAT = {"msr": ("MSR accesses", "MSR_READ/MSR_WRITE, SVM msr"),
        "ioport": ("port I/O", "IO_INSTRUCTION, SVM io"),
        "mmio": ("MMIO accesses", "EPT_MISCONFIG/EPT_VIOLATION, SVM npf")}


def sub_table(event, pid=None):
    who = "all VMs, " if pid is None else "pid(s) %d, " % pid
    o = "\n\n%sAnalyze events for %sall VCPUs:\n\n" % (label(pid), who)
    o += "%*s %10s %9s \n\n" % (40, HEAD[event], "Samples", "Samples%")
    keyed = {}
    for p, k, e, n in EVID:
        if e == event and (pid is None or p == pid):
            keyed[k] = keyed.get(k, 0) + n
    items = sorted(sorted(keyed.items()), key=lambda kv: -kv[1])
    tot = sum(keyed.values())
    for k, n in items:
        o += "%*s %10u %8.2f%%\n" % (40, k, n, n / tot * 100)
    o += "\nTotal Samples:%u.\n\n" % tot
    o += ("# kvmprof counts %s in kernel without timing them: no Time%%/Min/Max/Avg here; "
          "their handling time is in the VM-EXIT table (%s)\n") % WHAT[event]
    return o


open("subreason.txt", "w").write(
    sub_table("msr") + sub_table("ioport") + sub_table("mmio") + sub_table("msr", 2222))

# CSV: the model's rows (shares exclude HLT), count order then code.
COLS = ("vm_pid,vm_name,vcpu,isa,reason,name,hlt,count,in_flight,timed,rate_per_s,samples_pct,"
        "time_pct,total_ns,min_ns,max_ns,mean_ns,p50_ns,p99_ns,p999_ns")


def csv_rows(pid, vcpu_label, rs):
    bn = sum(r.n for r in rs if not r.hlt)
    bt = sum(r.total for r in rs if not r.hlt)
    an = sum(r.n for r in rs)
    at = sum(r.total for r in rs)
    lines = []
    for r in sorted(rs, key=lambda r: (-r.n, r.reason)):
        n, t = (an, at) if r.hlt else (bn, bt)
        lines.append("%d,%s,%s,vmx,%d,%s,%s,%d,0,%d,%.3f,%.4f,%.4f,%d,%d,%d,%.1f,%d,%d,%d" % (
            pid, VMS[pid], vcpu_label, r.reason, r.name, "true" if r.hlt else "false", r.n,
            r.n, r.n / SECS, r.n / n * 100, r.total / t * 100, r.total, r.mn, r.mx, r.mean,
            r.q(0.5), r.q(0.99), r.q(0.999)))
    return lines


lines = [COLS]
for pid in sorted(VMS):
    lines += csv_rows(pid, "all", rows(lambda p, c: p == pid))
    for vcpu in sorted({c for p, c, *_ in FIXTURE if p == pid}):
        lines += csv_rows(pid, str(vcpu), rows(lambda p, c: p == pid and c == vcpu))
open("fixture.csv", "w").write("\n".join(lines) + "\n")

# Diff (tests_diff.rs): one VM, 10 s each side, constant times per reason (p99 = the time).
NAMES = dict(VMX)
NAMES[18] = "VMCALL"
A = {49: (400000, 6000), 32: (300000, 1500), 1: (100000, 700), 30: (10000, 2000),
     12: (50000, 100000)}
B = {49: (20000, 6000), 32: (150000, 1400), 1: (100000, 700), 30: (10000, 2000),
     18: (70000, 2333), 12: (50000, 100000)}


def shares(side):
    busy = sum(n * ns for r, (n, ns) in side.items() if r not in HLT)
    allt = sum(n * ns for n, ns in side.values())
    return {r: n * ns / (allt if r in HLT else busy) * 100 for r, (n, ns) in side.items()}


def ratio(a, b):
    if a <= 0 and b <= 0:
        return "same"
    if a <= 0:
        return "new"
    if b <= 0:
        return "gone"
    if b < a:
        return "%.2f× less" % (a / b)
    if b > a:
        return "%.2f× more" % (b / a)
    return "same"


def rel(a, b):
    if a == 0 and b > 0:
        return "%9s" % "new"
    if a > 0 and b == 0:
        return "%9s" % "gone"
    return "%+8.1f%%" % ((b - a) / a * 100)


def us(v):
    return "%11s" % "n/a" if v is None else "%9.2fus" % (v / 1e3)


busy = lambda s: sum(n * ns for r, (n, ns) in s.items() if r not in HLT)
exits = lambda s: sum(n for r, (n, ns) in s.items() if r not in HLT)
o = "A: no-enlightenments [win11], 10.0s\nB: all-enlightenments [win11], 10.0s\n"
ta, tb = busy(A) / SECS, busy(B) / SECS
o += "Handling time per second (HLT excluded): A %.2fus, B %.2fus (%s)\n\n" % (
    ta / 1e3, tb / 1e3, ratio(ta, tb))
sa, sb = shares(A), shares(B)
reasons = sorted(set(A) | set(B), key=lambda r: NAMES[r])
delta_t = lambda r: abs(B.get(r, (0, 0))[0] * B.get(r, (0, 0))[1]
                        - A.get(r, (0, 0))[0] * A.get(r, (0, 0))[1])
delta_n = lambda r: abs(B.get(r, (0, 0))[0] - A.get(r, (0, 0))[0])
reasons.sort(key=lambda r: (-delta_t(r), -delta_n(r)))
shown = lambda r: NAMES[r] + (" (idle)" if r in HLT else "")
TOTAL = "Total (HLT excluded)"
w = max(len(TOTAL), max(len(shown(r)) for r in reasons))
GROUP = 10 + 1 + 10 + 1 + 7 + 1 + 10
o += ("%-*s  %-*s  %-*s" % (w, "", GROUP, "A: no-enlightenments", GROUP + 24,
                            "B: all-enlightenments")).rstrip() + "\n"
cols = "%10s %10s %7s %10s" % ("Count", "Exits/s", "Time%", "Mean")
o += "%-*s  %s  %s %9s  %-12s" % (w, "Reason", cols, cols, "vs A", "Time vs A")
o = o.rstrip() + "\n"


def mean(v):
    return "%10s" % "n/a" if v is None else "%8.2fus" % (v / 1e3)


def group(n, pct, mu):
    return "%10d %10.1f %7.2f %s" % (n, n / SECS, pct, mu)


def line(name, na, nb, pa, pb, ma, mb, ratio_):
    s = "%-*s  %s  %s %s  %-12s" % (w, name, group(na, pa, mean(ma)), group(nb, pb, mean(mb)),
                                    rel(na, nb), ratio_)
    return s.rstrip() + "\n"


for r in reasons:
    (na, va), (nb, vb) = A.get(r, (0, None)), B.get(r, (0, None))
    o += line(shown(r), na, nb, sa.get(r, 0.0), sb.get(r, 0.0), va, vb,
              ratio(na * (va or 0) / SECS, nb * (vb or 0) / SECS))
o += line(TOTAL, exits(A), exits(B), 100.0, 100.0, busy(A) / exits(A), busy(B) / exits(B),
          ratio(ta, tb))
open("diff.txt", "w").write(o)
