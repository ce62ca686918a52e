//! Reading the EL0 programs the build packages with the kernel: ELF64,
//! little endian, AArch64 executables.
//!
//! Owns: checking an image and listing its loadable segments. Must never:
//! read outside the image, or accept a segment that is writable and
//! executable, overlaps another, or reaches into the kernel's half.

use alloc::vec::Vec;
use core::fmt;

/// One PT_LOAD segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    /// Bytes of the image that initialise the segment (the rest is zero).
    pub file_offset: u64,
    pub file_size: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    NotElf,
    /// Not 64-bit, little endian, AArch64, executable.
    Unsupported {
        what: &'static str,
    },
    /// A header or segment lies outside the image.
    OutOfBounds,
    WriteAndExecute {
        vaddr: u64,
    },
    /// A segment outside the lower half's user range, or overlapping another.
    BadAddress {
        vaddr: u64,
    },
    NoSegments,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::TooShort => write!(f, "shorter than an ELF header"),
            ElfError::NotElf => write!(f, "not an ELF image"),
            ElfError::Unsupported { what } => write!(f, "unsupported ELF: {what}"),
            ElfError::OutOfBounds => write!(f, "a header or segment lies outside the image"),
            ElfError::WriteAndExecute { vaddr } => write!(f, "segment at {vaddr:#x} is writable and executable"),
            ElfError::BadAddress { vaddr } => {
                write!(f, "segment at {vaddr:#x} is outside user space or overlaps another")
            }
            ElfError::NoSegments => write!(f, "no loadable segment"),
        }
    }
}

/// The highest user address (exclusive): the lower half's 48 bits.
pub const USER_END: u64 = 1 << 48;

/// A checked image: entry point and segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks `image` and lists what to load.
pub fn parse(image: &[u8]) -> Result<Program, ElfError> {
    if image.len() < 64 {
        return Err(ElfError::TooShort);
    }
    if &image[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let unsupported = |what| Err(ElfError::Unsupported { what });
    if image[4] != 2 {
        return unsupported("not 64-bit");
    }
    if image[5] != 1 {
        return unsupported("not little endian");
    }
    let oob = ElfError::OutOfBounds;
    if u16_at(image, 16).ok_or(oob)? != 2 {
        return unsupported("not an executable");
    }
    if u16_at(image, 18).ok_or(oob)? != 183 {
        return unsupported("not AArch64");
    }
    let entry = u64_at(image, 24).ok_or(oob)?;
    let phoff = u64_at(image, 32).ok_or(oob)? as usize;
    let phentsize = u16_at(image, 54).ok_or(oob)? as usize;
    let phnum = u16_at(image, 56).ok_or(oob)? as usize;
    if phentsize < 56 {
        return unsupported("program header too small");
    }
    let mut segments: Vec<Segment> = Vec::new();
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize).ok_or(oob)?).ok_or(oob)?;
        let header = image.get(at..at.checked_add(56).ok_or(oob)?).ok_or(oob)?;
        if u32_at(header, 0).ok_or(oob)? != 1 {
            continue; // not PT_LOAD
        }
        let flags = u32_at(header, 4).ok_or(oob)?;
        let s = Segment {
            file_offset: u64_at(header, 8).ok_or(oob)?,
            vaddr: u64_at(header, 16).ok_or(oob)?,
            file_size: u64_at(header, 32).ok_or(oob)?,
            mem_size: u64_at(header, 40).ok_or(oob)?,
            executable: flags & 1 != 0,
            writable: flags & 2 != 0,
            readable: flags & 4 != 0,
        };
        let file_end = s.file_offset.checked_add(s.file_size).ok_or(oob)?;
        if file_end > image.len() as u64 || s.file_size > s.mem_size {
            return Err(oob);
        }
        if s.writable && s.executable {
            return Err(ElfError::WriteAndExecute { vaddr: s.vaddr });
        }
        let end = s.vaddr.checked_add(s.mem_size).ok_or(ElfError::BadAddress { vaddr: s.vaddr })?;
        if s.vaddr == 0 || end > USER_END || segments.iter().any(|o| s.vaddr < o.vaddr + o.mem_size && o.vaddr < end) {
            return Err(ElfError::BadAddress { vaddr: s.vaddr });
        }
        if s.mem_size > 0 {
            segments.push(s);
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoSegments);
    }
    if !segments.iter().any(|s| s.executable && s.vaddr <= entry && entry < s.vaddr + s.mem_size) {
        return Err(ElfError::BadAddress { vaddr: entry });
    }
    Ok(Program { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF with the given (flags, vaddr, file bytes, mem size) segments.
    fn elf(entry: u64, segments: &[(u32, u64, &[u8], u64)]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&2u16.to_le_bytes());
        out[18..20].copy_from_slice(&183u16.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        let data_start = 64 + 56 * segments.len();
        let mut data = Vec::new();
        for &(flags, vaddr, bytes, mem) in segments {
            let mut ph = vec![0u8; 56];
            ph[0..4].copy_from_slice(&1u32.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&((data_start + data.len()) as u64).to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&mem.to_le_bytes());
            out.extend(ph);
            data.extend_from_slice(bytes);
        }
        out.extend(data);
        out
    }

    #[test]
    fn a_program_with_text_and_data() {
        let image = elf(0x40_0000, &[(5, 0x40_0000, &[1, 2, 3, 4], 4), (6, 0x41_0000, &[9], 0x2000)]);
        let p = parse(&image).unwrap();
        assert_eq!(p.entry, 0x40_0000);
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments[0].executable && !p.segments[0].writable);
        assert_eq!((p.segments[1].file_size, p.segments[1].mem_size), (1, 0x2000));
    }

    #[test]
    fn hostile_images_are_refused() {
        assert_eq!(parse(&[0; 10]), Err(ElfError::TooShort));
        assert_eq!(parse(&[0; 64]), Err(ElfError::NotElf));
        let wx = elf(0x40_0000, &[(7, 0x40_0000, &[1], 1)]);
        assert_eq!(parse(&wx), Err(ElfError::WriteAndExecute { vaddr: 0x40_0000 }));
        let kernel = elf(0xFFFF_8000_0000_0000, &[(5, 0xFFFF_8000_0000_0000, &[1], 1)]);
        assert!(matches!(parse(&kernel), Err(ElfError::BadAddress { .. })));
        let overlap = elf(0x40_0000, &[(5, 0x40_0000, &[1], 0x2000), (6, 0x40_1000, &[1], 1)]);
        assert!(matches!(parse(&overlap), Err(ElfError::BadAddress { .. })));
        let entry_outside = elf(0x50_0000, &[(5, 0x40_0000, &[1], 1)]);
        assert!(matches!(parse(&entry_outside), Err(ElfError::BadAddress { .. })));
        let mut truncated = elf(0x40_0000, &[(5, 0x40_0000, &[1, 2, 3], 3)]);
        truncated.truncate(truncated.len() - 2);
        assert_eq!(parse(&truncated), Err(ElfError::OutOfBounds));
        let mut huge_phnum = elf(0x40_0000, &[(5, 0x40_0000, &[1], 1)]);
        huge_phnum[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(parse(&huge_phnum), Err(ElfError::OutOfBounds));
        // Every byte of a valid image flipped: a typed error or a program, never a panic.
        let good = elf(0x40_0000, &[(5, 0x40_0000, &[1, 2], 2), (6, 0x41_0000, &[3], 8)]);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = parse(&bad);
        }
    }
}
