//! Fault labels: names a task gives ranges of its own address space, so
//! the kernel's fault report can say what the faulting address is without
//! knowing what the task keeps there (the kernel knows no page descriptors;
//! the memory service labels its vmemmap so that a write to a shared tail
//! is reported as an HVO violation).
//!
//! Owns: one task's labels, bounded ([`MAX_LABELS`]) and checked.
//! Must never: hold more than `MAX_LABELS` labels or a label that is not
//! printable ASCII (it is copied into the kernel's console output).

use alloc::string::String;
use alloc::vec::Vec;

use crate::elf::USER_END;
use crate::syscall::SysError;
pub use folio_abi::label::{MAX_LABELS, MAX_LEN, ON_ANY_FAULT, ON_WRITE_TO_READ_ONLY};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Label {
    start: u64,
    end: u64,
    write_to_read_only: bool,
    text: String,
}

/// The labels of one task's address space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    labels: Vec<Label>,
}

/// What kind of fault a label is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKind {
    /// A permission fault on a write (the page is mapped, read-only).
    pub write_to_read_only: bool,
}

impl Labels {
    /// Adds a label for [va, va + size). Checks every argument; on error
    /// nothing changes.
    pub fn add(&mut self, va: u64, size: u64, when: u64, text: &[u8]) -> Result<(), SysError> {
        let end = va.checked_add(size).ok_or(SysError::InvalidArgument)?;
        if size == 0 || end > USER_END {
            return Err(SysError::InvalidArgument);
        }
        let write_to_read_only = match when {
            ON_ANY_FAULT => false,
            ON_WRITE_TO_READ_ONLY => true,
            _ => return Err(SysError::InvalidArgument),
        };
        if text.is_empty() || text.len() as u64 > MAX_LEN {
            return Err(SysError::TooLong);
        }
        if !text.iter().all(|b| (b' '..=b'~').contains(b)) {
            return Err(SysError::InvalidArgument);
        }
        if self.labels.len() >= MAX_LABELS {
            return Err(SysError::OutOfMemory);
        }
        let text = String::from_utf8(text.to_vec()).map_err(|_| SysError::InvalidArgument)?;
        self.labels.push(Label { start: va, end, write_to_read_only, text });
        Ok(())
    }

    /// The label of a fault at `address`, if any (the newest wins).
    pub fn name(&self, address: u64, kind: FaultKind) -> Option<&str> {
        self.labels
            .iter()
            .rev()
            .find(|l| (l.start..l.end).contains(&address) && (!l.write_to_read_only || kind.write_to_read_only))
            .map(|l| l.text.as_str())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE_RO: FaultKind = FaultKind { write_to_read_only: true };
    const OTHER: FaultKind = FaultKind { write_to_read_only: false };

    #[test]
    fn a_fault_in_a_range_gets_its_label() {
        let mut l = Labels::default();
        l.add(0x1000, 0x2000, ON_ANY_FAULT, b"heap").unwrap();
        l.add(0x10_0000, 0x1000, ON_WRITE_TO_READ_ONLY, b"HVO violation").unwrap();
        assert_eq!(l.name(0x1000, OTHER), Some("heap"));
        assert_eq!(l.name(0x2fff, WRITE_RO), Some("heap"));
        assert_eq!(l.name(0x3000, OTHER), None);
        assert_eq!(l.name(0x10_0800, WRITE_RO), Some("HVO violation"));
        // Only a write to a read-only page there is an HVO violation.
        assert_eq!(l.name(0x10_0800, OTHER), None);
        // The newest label wins where ranges overlap.
        l.add(0x1800, 0x100, ON_ANY_FAULT, b"inner").unwrap();
        assert_eq!(l.name(0x1800, OTHER), Some("inner"));
        assert_eq!(l.name(0x1000, OTHER), Some("heap"));
    }

    #[test]
    fn bad_labels_are_typed_errors_and_change_nothing() {
        let mut l = Labels::default();
        assert_eq!(l.add(0x1000, 0, ON_ANY_FAULT, b"x"), Err(SysError::InvalidArgument));
        assert_eq!(l.add(u64::MAX, 2, ON_ANY_FAULT, b"x"), Err(SysError::InvalidArgument));
        assert_eq!(l.add(USER_END - 1, 2, ON_ANY_FAULT, b"x"), Err(SysError::InvalidArgument));
        assert_eq!(l.add(0x1000, 1, 7, b"x"), Err(SysError::InvalidArgument));
        assert_eq!(l.add(0x1000, 1, ON_ANY_FAULT, b""), Err(SysError::TooLong));
        assert_eq!(l.add(0x1000, 1, ON_ANY_FAULT, &[b'a'; 65]), Err(SysError::TooLong));
        assert_eq!(l.add(0x1000, 1, ON_ANY_FAULT, b"bell\x07"), Err(SysError::InvalidArgument));
        assert_eq!(l.add(0x1000, 1, ON_ANY_FAULT, "caf\u{e9}".as_bytes()), Err(SysError::InvalidArgument));
        assert!(l.is_empty());
        for i in 0..MAX_LABELS as u64 {
            l.add(i * 0x1000, 0x1000, ON_ANY_FAULT, b"page").unwrap();
        }
        assert_eq!(l.add(0x100_0000, 0x1000, ON_ANY_FAULT, b"one more"), Err(SysError::OutOfMemory));
        assert_eq!(l.len(), MAX_LABELS);
    }
}
