//! Decoding exceptions into reports a person can act on.
//!
//! Owns: the names of exception classes and fault status codes, and the
//! layout of a fault report. The vector code (`arch::aarch64::exception`)
//! decides what happens; this module only explains.
//! Must never: touch hardware; it decodes plain numbers so it is tested on
//! the host.

use core::fmt;

use folio_abi::report::{Hex, Value};

/// Which of the 16 vector entries was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    pub source: VectorSource,
    pub kind: VectorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorSource {
    CurrentElSp0,
    CurrentElSpx,
    LowerElAarch64,
    LowerElAarch32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorKind {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

impl Vector {
    /// The vector entry with index 0..16 (four sources of four kinds).
    pub fn from_index(index: u64) -> Option<Vector> {
        let source = match index / 4 {
            0 => VectorSource::CurrentElSp0,
            1 => VectorSource::CurrentElSpx,
            2 => VectorSource::LowerElAarch64,
            3 => VectorSource::LowerElAarch32,
            _ => return None,
        };
        let kind = match index % 4 {
            0 => VectorKind::Synchronous,
            1 => VectorKind::Irq,
            2 => VectorKind::Fiq,
            _ => VectorKind::SError,
        };
        Some(Vector { source, kind })
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            VectorKind::Synchronous => "synchronous",
            VectorKind::Irq => "IRQ",
            VectorKind::Fiq => "FIQ",
            VectorKind::SError => "SError",
        };
        let source = match self.source {
            VectorSource::CurrentElSp0 => "current EL with SP_EL0",
            VectorSource::CurrentElSpx => "current EL with SP_ELx",
            VectorSource::LowerElAarch64 => "lower EL (AArch64)",
            VectorSource::LowerElAarch32 => "lower EL (AArch32)",
        };
        write!(f, "{kind} exception from {source}")
    }
}

/// ESR_ELx.EC, the exception class, by name (Arm ARM D24.2.40).
pub fn exception_class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "trapped WFI/WFE",
        0x07 => "SVE/SIMD/FP access trap",
        0x0e => "illegal execution state",
        0x11 => "SVC (AArch32)",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "trapped MSR/MRS/system instruction",
        0x19 => "SVE access trap",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort from the same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort from the same EL",
        0x26 => "SP alignment fault",
        0x2c => "trapped floating-point exception",
        0x2f => "SError interrupt",
        0x30 => "breakpoint from a lower EL",
        0x31 => "breakpoint from the same EL",
        0x32 => "software step from a lower EL",
        0x33 => "software step from the same EL",
        0x34 => "watchpoint from a lower EL",
        0x35 => "watchpoint from the same EL",
        0x3c => "BRK instruction",
        _ => "reserved or unallocated exception class",
    }
}

/// Whether an exception class carries a data or instruction fault status code.
pub fn is_abort(ec: u64) -> bool {
    matches!(ec, 0x20 | 0x21 | 0x24 | 0x25)
}

/// A decoded DFSC/IFSC: what kind of fault, and at which translation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultStatus {
    pub kind: &'static str,
    /// The translation table level the fault was found at, where the code says.
    pub level: Option<i8>,
}

/// Decodes ESR_ELx.ISS[5:0] of an abort (DFSC/IFSC).
pub fn fault_status(fsc: u64) -> FaultStatus {
    let level = Some((fsc & 3) as i8);
    let (kind, level) = match fsc & 0x3f {
        0x00..=0x03 => ("address size fault", level),
        0x04..=0x07 => ("translation fault", level),
        0x08..=0x0b => ("access flag fault", level),
        0x0c..=0x0f => ("permission fault", level),
        0x10 => ("synchronous external abort", None),
        0x11 => ("synchronous tag check fault", None),
        0x14..=0x17 => ("synchronous external abort on table walk", level),
        0x21 => ("alignment fault", None),
        0x29 => ("address size fault", Some(-1)),
        0x2b => ("translation fault", Some(-1)),
        0x30 => ("TLB conflict abort", None),
        0x31 => ("unsupported atomic hardware update fault", None),
        _ => ("reserved fault status code", None),
    };
    FaultStatus { kind, level }
}

/// The exception level an exception came from, read from SPSR.M[3:2].
pub fn spsr_el(spsr: u64) -> u64 {
    (spsr >> 2) & 3
}

/// Everything known about one exception, printable as a multi-line report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionReport {
    pub vector: Vector,
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    pub spsr: u64,
}

impl ExceptionReport {
    pub fn exception_class(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// For a data abort, whether the access was a write (ESR.ISS.WnR).
    pub fn is_write(&self) -> bool {
        self.exception_class() & !1 == 0x24 && self.esr & (1 << 6) != 0
    }
}

/// The report's ` key=value` fields for a result line (`folio_abi::report`):
/// `el`, `class` (EC), `esr`, and for aborts `fault`, `level`, `access`;
/// then `far`, `elr`.
pub struct ReportFields<'a>(pub &'a ExceptionReport);

impl fmt::Display for ReportFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let ec = r.exception_class();
        write!(f, " el={} class={} esr={}", spsr_el(r.spsr), Hex(ec), Hex(r.esr))?;
        if is_abort(ec) {
            let status = fault_status(r.esr & 0x3f);
            write!(f, " fault={}", Value(status.kind))?;
            if let Some(level) = status.level {
                write!(f, " level={level}")?;
            }
            if ec & !1 == 0x24 {
                write!(f, " access={}", if r.is_write() { "write" } else { "read" })?;
            }
        }
        write!(f, " far={} elr={}", Hex(r.far), Hex(r.elr))
    }
}

impl fmt::Display for ExceptionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = self.exception_class();
        writeln!(f, "{} at EL{}", self.vector, spsr_el(self.spsr))?;
        writeln!(f, "  class: {} (EC {ec:#04x}), ESR {:#018x}", exception_class_name(ec), self.esr)?;
        if is_abort(ec) {
            let status = fault_status(self.esr & 0x3f);
            write!(f, "  fault: {}", status.kind)?;
            if let Some(level) = status.level {
                write!(f, " at level {level}")?;
            }
            if ec & !1 == 0x24 {
                write!(f, " on a {}", if self.is_write() { "write" } else { "read" })?;
            }
            writeln!(f, " (FSC {:#04x})", self.esr & 0x3f)?;
        }
        writeln!(f, "  FAR {:#018x}  ELR {:#018x}  SPSR {:#010x}", self.far, self.elr, self.spsr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_index_decodes() {
        assert_eq!(
            Vector::from_index(4),
            Some(Vector { source: VectorSource::CurrentElSpx, kind: VectorKind::Synchronous })
        );
        assert_eq!(Vector::from_index(9), Some(Vector { source: VectorSource::LowerElAarch64, kind: VectorKind::Irq }));
        assert_eq!(Vector::from_index(15).map(|v| v.kind), Some(VectorKind::SError));
        assert_eq!(Vector::from_index(16), None);
    }

    #[test]
    fn report_fields_are_key_values() {
        let report = ExceptionReport {
            vector: Vector::from_index(4).unwrap(),
            esr: (0x25 << 26) | (1 << 25) | 0x07,
            far: 0xffff_7fff_dead_0000,
            elr: 0xffff_8000_0000_1234,
            spsr: 0x3c5,
        };
        assert_eq!(
            ReportFields(&report).to_string(),
            " el=1 class=0x25 esr=0x96000007 fault=\"translation fault\" level=3 access=read far=0xffff7fffdead0000 elr=0xffff800000001234"
        );
    }

    #[test]
    fn a_kernel_translation_fault_reads_well() {
        // A read of an unmapped address at EL1: EC 0x25, IL, DFSC 0x07 (level 3).
        let report = ExceptionReport {
            vector: Vector::from_index(4).unwrap(),
            esr: (0x25 << 26) | (1 << 25) | 0x07,
            far: 0xffff_8000_dead_0000,
            elr: 0xffff_8000_0001_2340,
            spsr: 0x3c5,
        };
        let text = report.to_string();
        assert!(text.starts_with("synchronous exception from current EL with SP_ELx at EL1\n"), "{text}");
        assert!(text.contains("class: data abort from the same EL (EC 0x25)"), "{text}");
        assert!(text.contains("fault: translation fault at level 3 on a read (FSC 0x07)"), "{text}");
        assert!(text.contains("FAR 0xffff8000dead0000"), "{text}");
    }

    #[test]
    fn permission_fault_on_write_and_level_minus_one() {
        let write = ExceptionReport {
            vector: Vector::from_index(8).unwrap(),
            esr: (0x24 << 26) | (1 << 6) | 0x0f,
            far: 0x1000,
            elr: 0x2000,
            spsr: 0,
        };
        assert!(write.is_write());
        assert!(write.to_string().contains("permission fault at level 3 on a write"));
        assert_eq!(fault_status(0x2b), FaultStatus { kind: "translation fault", level: Some(-1) });
        assert_eq!(exception_class_name(0x3c), "BRK instruction");
        assert_eq!(exception_class_name(0x3f), "reserved or unallocated exception class");
    }
}
