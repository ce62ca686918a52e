//! Checks a flattened device tree before anything reads it, and re-encodes it
//! into a canonical form.
//!
//! The firmware hands the kernel an untrusted blob. [`normalize`] walks every
//! byte the `fdt` crate will later look at (header, memory reservation block,
//! structure block, strings block) under the rules of the Devicetree
//! Specification v0.4, chapter 5, and returns a typed [`DtbError`] for the
//! first violation. The blob it returns has the same content without NOP
//! tokens and padding, so the `fdt` crate (which panics on some malformed
//! inputs) only ever sees a tree in the shape it expects.

use alloc::vec::Vec;

use super::DtbError;

pub const FDT_MAGIC: u32 = 0xd00d_feed;
pub const HEADER_SIZE: usize = 40;
/// Deeper trees are refused: real ones are a handful of levels deep, and the
/// `fdt` crate keeps at most 64 levels.
pub const MAX_DEPTH: usize = 32;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

fn be32(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(((be32(bytes, offset)? as u64) << 32) | be32(bytes, offset + 4)? as u64)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The NUL-terminated UTF-8 string starting at `offset` in `bytes`.
fn c_str(bytes: &[u8], offset: usize) -> Option<&str> {
    let rest = bytes.get(offset..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&rest[..len]).ok()
}

/// The header fields the kernel relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub total_size: usize,
    pub off_struct: usize,
    pub off_strings: usize,
    pub off_rsvmap: usize,
    pub version: u32,
    pub size_strings: usize,
    pub size_struct: usize,
}

/// Reads and bounds-checks the 40-byte header. `header` may be just the first
/// bytes of the blob: the early boot code maps those first to learn how much
/// more to map.
pub fn parse_header(header: &[u8]) -> Result<Header, DtbError> {
    if header.len() < HEADER_SIZE {
        return Err(DtbError::TooShort { len: header.len() });
    }
    let field = |i: usize| be32(header, i * 4).unwrap_or(0);
    let magic = field(0);
    if magic != FDT_MAGIC {
        return Err(DtbError::BadMagic { found: magic });
    }
    let h = Header {
        total_size: field(1) as usize,
        off_struct: field(2) as usize,
        off_strings: field(3) as usize,
        off_rsvmap: field(4) as usize,
        version: field(5),
        size_strings: field(8) as usize,
        size_struct: field(9) as usize,
    };
    // Version 17 added size_dt_struct; compatibility goes back to 16.
    if h.version < 17 || field(6) > 17 {
        return Err(DtbError::UnsupportedVersion { version: h.version });
    }
    let within = |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= h.total_size);
    if h.total_size < HEADER_SIZE {
        return Err(DtbError::Malformed { offset: 4, what: "totalsize smaller than the header" });
    }
    if !within(h.off_struct, h.size_struct) || !h.off_struct.is_multiple_of(4) {
        return Err(DtbError::BlockOutOfBounds { block: "structure" });
    }
    if !within(h.off_strings, h.size_strings) {
        return Err(DtbError::BlockOutOfBounds { block: "strings" });
    }
    if !h.off_rsvmap.is_multiple_of(8) || !within(h.off_rsvmap, 16) {
        return Err(DtbError::BlockOutOfBounds { block: "memory reservation" });
    }
    Ok(h)
}

/// Validates `blob` and returns it re-encoded without NOPs or padding.
pub fn normalize(blob: &[u8]) -> Result<Vec<u8>, DtbError> {
    let h = parse_header(blob)?;
    if blob.len() < h.total_size {
        return Err(DtbError::Truncated { total_size: h.total_size, available: blob.len() });
    }
    let blob = &blob[..h.total_size];
    let strings = &blob[h.off_strings..h.off_strings + h.size_strings];

    // Memory reservation block: (address, size) pairs up to an all-zero entry.
    let mut reservations = Vec::new();
    let mut at = h.off_rsvmap;
    loop {
        let (Some(address), Some(size)) = (be64(blob, at), be64(blob, at + 8)) else {
            return Err(DtbError::Malformed { offset: at, what: "memory reservation block not terminated" });
        };
        at += 16;
        if address == 0 && size == 0 {
            break;
        }
        reservations.push((address, size));
    }

    // Structure block.
    let structure = &blob[h.off_struct..h.off_struct + h.size_struct];
    let mut out_struct: Vec<u8> = Vec::with_capacity(structure.len());
    let mut at = 0usize;
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut properties_allowed = false;
    loop {
        let offset = h.off_struct + at;
        let token =
            be32(structure, at).ok_or(DtbError::Malformed { offset, what: "structure block ends without FDT_END" })?;
        match token {
            FDT_BEGIN_NODE => {
                if depth == 0 && seen_root {
                    return Err(DtbError::Malformed { offset, what: "more than one root node" });
                }
                let name = c_str(structure, at + 4)
                    .ok_or(DtbError::Malformed { offset, what: "node name not a terminated UTF-8 string" })?;
                if depth == 0 && !name.is_empty() {
                    return Err(DtbError::Malformed { offset, what: "root node has a name" });
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DtbError::Malformed { offset, what: "nodes nested too deeply" });
                }
                seen_root = true;
                properties_allowed = true;
                let end = align4(at + 4 + name.len() + 1);
                out_struct.extend_from_slice(&structure[at..at + 4 + name.len() + 1]);
                out_struct.resize(align4(out_struct.len()), 0);
                at = end;
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(DtbError::Malformed { offset, what: "FDT_END_NODE without a node" });
                }
                depth -= 1;
                properties_allowed = false;
                out_struct.extend_from_slice(&token.to_be_bytes());
                at += 4;
            }
            FDT_PROP => {
                if depth == 0 || !properties_allowed {
                    return Err(DtbError::Malformed { offset, what: "property outside a node or after a child node" });
                }
                let (Some(len), Some(name_offset)) = (be32(structure, at + 4), be32(structure, at + 8)) else {
                    return Err(DtbError::Malformed { offset, what: "truncated property header" });
                };
                let len = len as usize;
                let value_end = (at + 12).checked_add(len).filter(|&e| e <= structure.len());
                let Some(value_end) = value_end else {
                    return Err(DtbError::Malformed { offset, what: "property value runs past the structure block" });
                };
                let name = c_str(strings, name_offset as usize).ok_or(DtbError::Malformed {
                    offset,
                    what: "property name not a terminated UTF-8 string in the strings block",
                })?;
                if (name == "#address-cells" || name == "#size-cells" || name == "#interrupt-cells") && len != 4 {
                    return Err(DtbError::Malformed {
                        offset,
                        what: "#address-cells, #size-cells or #interrupt-cells is not one cell",
                    });
                }
                out_struct.extend_from_slice(&structure[at..value_end]);
                out_struct.resize(align4(out_struct.len()), 0);
                at = align4(value_end);
            }
            FDT_NOP => at += 4,
            FDT_END => {
                if depth != 0 || !seen_root {
                    return Err(DtbError::Malformed { offset, what: "FDT_END before the root node closed" });
                }
                out_struct.extend_from_slice(&token.to_be_bytes());
                break;
            }
            _ => return Err(DtbError::Malformed { offset, what: "unknown structure token" }),
        }
    }

    // Re-encode: header, reservations, structure, strings.
    let off_rsvmap = HEADER_SIZE;
    let off_struct = off_rsvmap + (reservations.len() + 1) * 16;
    let off_strings = off_struct + out_struct.len();
    let total = off_strings + strings.len();
    let mut out = Vec::with_capacity(total);
    for word in [
        FDT_MAGIC,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        off_rsvmap as u32,
        17,
        16,
        be32(blob, 28).unwrap_or(0), // boot_cpuid_phys
        strings.len() as u32,
        out_struct.len() as u32,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    for (address, size) in reservations.iter().copied().chain([(0, 0)]) {
        out.extend_from_slice(&address.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
    }
    out.extend_from_slice(&out_struct);
    out.extend_from_slice(strings);
    Ok(out)
}
