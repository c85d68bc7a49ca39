//! Guest code (16-bit real mode, loaded at GPA 0x1000; 32-bit operands via 0x66 prefixes).

use anyhow::{bail, Result};

use super::hyperv::{self as hv, HvLayout};

/// A few real-mode instructions, enough for the exerciser guests.
#[derive(Default)]
struct Asm(Vec<u8>);

impl Asm {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn mov_r32(&mut self, opcode: u8, v: u32) -> &mut Self {
        self.bytes(&[0x66, opcode]).bytes(&v.to_le_bytes())
    }
    fn mov_ecx(&mut self, v: u32) -> &mut Self {
        self.mov_r32(0xb9, v)
    }
    /// `wrmsr` of a constant: ecx = msr, edx:eax = value.
    fn wrmsr(&mut self, msr: u32, value: u64) -> &mut Self {
        self.mov_ecx(msr)
            .mov_r32(0xba, (value >> 32) as u32)
            .mov_r32(0xb8, value as u32)
            .bytes(&[0x0f, 0x30])
    }
    fn rdmsr(&mut self, msr: u32) -> &mut Self {
        self.mov_ecx(msr).bytes(&[0x0f, 0x32])
    }
    /// `dec edi; jnz <start>`.
    fn loop_to(&mut self, start: usize) -> Result<&mut Self> {
        self.bytes(&[0x66, 0x4f]);
        let back = start as i64 - (self.0.len() as i64 + 2);
        let Ok(rel) = i8::try_from(back) else {
            bail!(
                "guest loop body of {} bytes is too long for a short jump",
                -back
            );
        };
        Ok(self.bytes(&[0x75, rel as u8]))
    }
}

/// Guest code for `ops` (16-bit real mode), ending in `hlt`.
pub fn guest_code(ops: &str) -> Result<Vec<u8>> {
    if let Some(bad) = ops.chars().find(|c| !"ocrw".contains(*c)) {
        bail!("invalid op {bad:?} in --ops {ops:?}: use any of o (out), c (cpuid), r (rdmsr), w (wrmsr), or h alone (Hyper-V)");
    }
    let mut code = Vec::new();
    if ops.contains('o') {
        code.extend([0xe6, 0x10]); // out 0x10, al
    }
    if ops.contains('c') {
        code.extend([0x66, 0x31, 0xc0, 0x0f, 0xa2]); // xor eax, eax; cpuid
    }
    if ops.contains('r') || ops.contains('w') {
        code.extend([0x66, 0xb9, 0x10, 0, 0, 0]); // mov ecx, 0x10 (IA32_TSC)
    }
    if ops.contains('r') {
        code.extend([0x0f, 0x32]); // rdmsr
    }
    if ops.contains('w') {
        code.extend([0x0f, 0x30]); // wrmsr
    }
    code.extend([0x66, 0x4f]); // dec edi
    let back = -(code.len() as i64 + 2);
    code.extend([0x75, back as i8 as u8]); // jnz loop
    code.push(0xf4); // hlt
    Ok(code)
}

/// Writes of the Hyper-V guest's prologue, in order: (MSR, value).
pub(super) fn hyperv_setup_writes(l: &HvLayout) -> [(u32, u64); 6] {
    [
        (hv::GUEST_OS_ID, hv::WINDOWS_11_GUEST_OS_ID),
        (hv::SIMP, l.simp_gpa | hv::PAGE_ENABLE),
        (hv::SIEFP, l.siefp_gpa | hv::PAGE_ENABLE),
        (hv::sint(l.sint), u64::from(l.vector) | hv::SINT_AUTO_EOI),
        (hv::SCONTROL, hv::SCONTROL_ENABLE),
        (
            hv::STIMER0_CONFIG,
            hv::STIMER_ENABLE
                | hv::STIMER_AUTO_ENABLE
                | (u64::from(l.sint) << hv::STIMER_SINTX_SHIFT),
        ),
    ]
}

/// The Hyper-V guest, as an enlightened Windows 11 would touch SynIC (see hyperv.rs):
/// ```text
///   wrmsr GUEST_OS_ID, SIMP, SIEFP, SINTx (vector, AutoEOI), SCONTROL, STIMER0_CONFIG
/// loop: wrmsr HV_X64_MSR_EOI (0); rdmsr TIME_REF_COUNT; dec edi; jnz loop
///   rdmsr TIME_REF_COUNT; wrmsr STIMER0_COUNT = now + delay   (one-shot, message mode)
///   sti; hlt          ; woken by the stimer's SINT interrupt (AutoEOI, handler = iret)
///   cli; clear the SINT's message slot; wrmsr EOM; out DONE_PORT, al
/// ```
/// MSR exits per batch: 6 + 2 × iters + 3; SynIC exits to the VMM: SIMP, SIEFP, SCONTROL.
pub(super) fn hyperv_guest_code(l: &HvLayout) -> Result<Vec<u8>> {
    let mut a = Asm::default();
    for (msr, value) in hyperv_setup_writes(l) {
        a.wrmsr(msr, value);
    }
    let start = a.0.len();
    a.bytes(&[0x66, 0x31, 0xc0, 0x66, 0x31, 0xd2]) // xor eax, eax; xor edx, edx
        .mov_ecx(hv::EOI)
        .bytes(&[0x0f, 0x30]) // wrmsr
        .rdmsr(hv::TIME_REF_COUNT)
        .loop_to(start)?;
    a.rdmsr(hv::TIME_REF_COUNT)
        .mov_r32(0x05, l.stimer_delay_100ns) // add eax, imm32 (0x66 05 = add eax)
        .bytes(&[0x66, 0x83, 0xd2, 0x00]) // adc edx, 0
        .mov_ecx(hv::STIMER0_COUNT)
        .bytes(&[0x0f, 0x30]) // wrmsr
        .bytes(&[0xfb, 0xf4, 0xfa]); // sti; hlt; cli
    let slot = l.simp_gpa + 256 * u64::from(l.sint);
    let Ok(slot) = u16::try_from(slot) else {
        bail!("SIMP message slot {slot:#x} is not addressable from real mode");
    };
    a.bytes(&[0x66, 0xc7, 0x06]) // mov dword [slot], 0  (message_type = HvMessageTypeNone)
        .bytes(&slot.to_le_bytes())
        .bytes(&0u32.to_le_bytes())
        .wrmsr(hv::EOM, 0)
        .bytes(&[0xe6, hv::DONE_PORT as u8]); // out DONE_PORT, al
    Ok(a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_code_matches_kvmtest() {
        let code = guest_code("ocrw").unwrap();
        assert_eq!(
            code,
            [
                0xe6, 0x10, 0x66, 0x31, 0xc0, 0x0f, 0xa2, 0x66, 0xb9, 0x10, 0, 0, 0, 0x0f, 0x32,
                0x0f, 0x30, 0x66, 0x4f, 0x75, 0xeb, 0xf4
            ]
        );
        assert_eq!(guest_code("").unwrap(), [0x66, 0x4f, 0x75, 0xfc, 0xf4]);
        let err = guest_code("ox").unwrap_err().to_string();
        assert!(err.contains("invalid op 'x'"), "{err}");
    }

    /// Counts `wrmsr`/`rdmsr` preceded by `mov ecx, imm32`, in code order.
    fn msr_ops(code: &[u8]) -> Vec<(u32, bool)> {
        let mut out = Vec::new();
        let mut ecx = 0;
        let mut i = 0;
        while i < code.len() {
            if code[i..].starts_with(&[0x66, 0xb9]) {
                ecx = u32::from_le_bytes(code[i + 2..i + 6].try_into().unwrap());
                i += 6;
            } else if code[i..].starts_with(&[0x66])
                && i + 1 < code.len()
                && (0xb8..=0xbf).contains(&code[i + 1])
            {
                i += 6;
            } else if code[i..].starts_with(&[0x0f, 0x30]) || code[i..].starts_with(&[0x0f, 0x32]) {
                out.push((ecx, code[i + 1] == 0x30));
                i += 2;
            } else {
                i += 1;
            }
        }
        out
    }

    #[test]
    fn hyperv_guest_touches_the_synic_msrs() {
        let l = HvLayout::default();
        let code = hyperv_guest_code(&l).unwrap();
        let ops = msr_ops(&code);
        let writes: Vec<u32> = ops.iter().filter(|o| o.1).map(|o| o.0).collect();
        assert_eq!(
            writes,
            [
                hv::GUEST_OS_ID,
                hv::SIMP,
                hv::SIEFP,
                hv::sint(l.sint),
                hv::SCONTROL,
                hv::STIMER0_CONFIG,
                hv::EOI,
                hv::STIMER0_COUNT,
                hv::EOM
            ]
        );
        let reads: Vec<u32> = ops.iter().filter(|o| !o.1).map(|o| o.0).collect();
        assert_eq!(reads, [hv::TIME_REF_COUNT, hv::TIME_REF_COUNT]);
        // The loop jumps back to its first instruction (xor eax, eax).
        let jnz = code
            .windows(4)
            .position(|w| w[..3] == [0x66, 0x4f, 0x75])
            .unwrap();
        let target = (jnz as i64 + 4) + i64::from(code[jnz + 3] as i8);
        assert_eq!(
            &code[target as usize..target as usize + 3],
            [0x66, 0x31, 0xc0]
        );
        assert_eq!(&code[code.len() - 2..], [0xe6, hv::DONE_PORT as u8]);
        assert!(code.contains(&0xf4), "no hlt");
        assert_eq!(hv::msr_exits_per_batch(5), 6 + 10 + 3);
        // SINT value: vector, AutoEOI (bit 17) set, masked (bit 16) clear.
        let sint = hyperv_setup_writes(&l)[3].1;
        assert_eq!(sint & 0xff, u64::from(l.vector));
        assert_eq!(sint & (3 << 16), 1 << 17);
    }
}
