//! GICv3 redistributors: which frame serves a core, found by walking every
//! redistributor region the DTB lists, with no hardware (so it is tested on
//! the host; the kernel's driver reads GICR_TYPER through MMIO).
//!
//! Owns: the walk. Must never: read past a region's end, or go on in a
//! region past the frame its GICR_TYPER marks last.

/// The bytes of one redistributor (its RD and SGI frames, 64 KiB each).
pub const REDISTRIBUTOR_SIZE: u64 = 0x2_0000;
/// The most redistributor regions folio uses (the rest are reported).
pub const MAX_REDISTRIBUTOR_REGIONS: usize = 8;
/// GICR_TYPER.Last: the last redistributor of its region.
const TYPER_LAST: u64 = 1 << 4;

/// The affinity of MPIDR `mpidr` as GICR_TYPER[63:32] packs it
/// (Aff3.Aff2.Aff1.Aff0).
pub fn typer_affinity(mpidr: u64) -> u32 {
    (mpidr & 0xff_ffff) as u32 | (((mpidr >> 32) & 0xff) as u32) << 24
}

/// The address of the redistributor serving the core with MPIDR `mpidr`:
/// each region `(base, size)` is walked frame by frame up to the one marked
/// last or the region's end. `typer` reads GICR_TYPER at a frame's address.
pub fn redistributor_for(regions: &[(u64, u64)], mpidr: u64, typer: &mut dyn FnMut(u64) -> u64) -> Option<u64> {
    let affinity = typer_affinity(mpidr);
    for &(base, size) in regions {
        let mut offset = 0;
        while offset + REDISTRIBUTOR_SIZE <= size {
            let frame = base + offset;
            let t = typer(frame);
            if (t >> 32) as u32 == affinity {
                return Some(frame);
            }
            if t & TYPER_LAST != 0 {
                break;
            }
            offset += REDISTRIBUTOR_SIZE;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Regions of redistributors for the given MPIDRs, GICR_TYPER as the
    /// hardware has it (Last on each region's last frame).
    fn machine(regions: &[(u64, &[u64])]) -> (alloc::vec::Vec<(u64, u64)>, BTreeMap<u64, u64>) {
        let mut typers = BTreeMap::new();
        let mut list = alloc::vec::Vec::new();
        for &(base, mpidrs) in regions {
            for (i, &m) in mpidrs.iter().enumerate() {
                let last = if i + 1 == mpidrs.len() { TYPER_LAST } else { 0 };
                typers.insert(base + i as u64 * REDISTRIBUTOR_SIZE, (typer_affinity(m) as u64) << 32 | last);
            }
            list.push((base, mpidrs.len() as u64 * REDISTRIBUTOR_SIZE));
        }
        (list, typers)
    }

    #[test]
    fn every_core_finds_its_frame_in_any_region() {
        let (regions, typers) = machine(&[(0x80a_0000, &[0, 1, 2]), (0x40_0000_0000, &[0x100, 0x1_0000_0000])]);
        let mut reads = 0;
        let mut typer = |a: u64| {
            reads += 1;
            *typers.get(&a).unwrap_or_else(|| panic!("read outside every frame: {a:#x}"))
        };
        assert_eq!(redistributor_for(&regions, 2, &mut typer), Some(0x80a_0000 + 2 * REDISTRIBUTOR_SIZE));
        assert_eq!(redistributor_for(&regions, 0x8000_0100, &mut typer), Some(0x40_0000_0000), "MPIDR bit 31 ignored");
        assert_eq!(redistributor_for(&regions, 0x1_0000_0000, &mut typer), Some(0x40_0002_0000), "Aff3");
        assert_eq!(redistributor_for(&regions, 7, &mut typer), None);
        assert!(reads > 0);
    }

    #[test]
    fn a_region_ends_at_its_last_frame_or_its_size() {
        // The DTB says the first region is larger than its frames: the walk
        // stops at the frame marked last and goes on in the next region.
        let (mut regions, typers) = machine(&[(0x1000_0000, &[0]), (0x2000_0000, &[1])]);
        regions[0].1 = 16 * REDISTRIBUTOR_SIZE;
        let mut typer = |a: u64| *typers.get(&a).unwrap_or_else(|| panic!("read past the last frame: {a:#x}"));
        assert_eq!(redistributor_for(&regions, 1, &mut typer), Some(0x2000_0000));
        // A region too small for one frame is never read.
        let regions = [(0x3000_0000, REDISTRIBUTOR_SIZE - 1)];
        assert_eq!(redistributor_for(&regions, 0, &mut |a| panic!("read at {a:#x}")), None);
    }
}
