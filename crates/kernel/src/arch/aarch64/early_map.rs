//! Early mappings: a small window of the boot page tables in which the boot
//! path maps what it needs before the full page-table engine exists (the
//! DTB, the console UART, the Pi's GPIO block).
//!
//! The window is the two 4 KiB-granule L3 tables `boot.s` hooks into the
//! kernel's L2 table at entries 510 and 511: 1024 pages at
//! [`WINDOW_BASE`]. Slots are handed out once and never reused, so every
//! change is invalid -> valid and needs no TLB invalidation, only the
//! `dsb ishst; isb` that makes the new entry visible to the walker.
//!
//! Must never: remap or unmap a live slot (that would need break-before-make),
//! or map outside the window.

use core::sync::atomic::{AtomicUsize, Ordering};

use aarch64_cpu::asm::barrier;

use folio_core::mm::paging::{Attributes, descriptor};

use crate::sync::SpinLock;

const PAGE_SIZE: u64 = 4096;
const KERNEL_VIRT_BASE: u64 = 0xFFFF_8000_0000_0000;
/// The window starts at L2 entry 510 of the kernel's 1 GiB region.
pub const WINDOW_BASE: u64 = KERNEL_VIRT_BASE + 510 * 0x20_0000;
pub const WINDOW_PAGES: usize = 1024;

/// Output addresses are 48 bits.
const OUTPUT_MASK: u64 = 0x0000_ffff_ffff_f000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Device-nGnRE, read/write, never executable.
    Device,
    /// Normal write-back, read-only, never executable.
    NormalReadOnly,
    /// Normal write-back, read/write, never executable (boot page-table frames).
    NormalReadWrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyMapError {
    /// The window has fewer free pages than the request needs.
    WindowFull { pages: usize },
    /// The physical range does not fit 48 bits.
    AddressTooLarge { physical: u64 },
    /// The kernel runs on its own tables; the boot window no longer exists.
    Retired,
}

unsafe extern "C" {
    static mut boot_l3_fixmap: [u64; WINDOW_PAGES];
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Set once the kernel runs on its own tables: the window is gone.
static RETIRED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Called once the boot tables are no longer in use.
pub fn retire() {
    RETIRED.store(true, Ordering::SeqCst);
}
static WRITE_LOCK: SpinLock<()> = SpinLock::new(());

/// Maps [physical, physical + size) and returns the virtual address of
/// `physical`.
pub fn map(physical: u64, size: u64, memory: Memory) -> Result<usize, EarlyMapError> {
    let first = physical & !(PAGE_SIZE - 1);
    let end = physical.checked_add(size.max(1)).ok_or(EarlyMapError::AddressTooLarge { physical })?;
    if end > OUTPUT_MASK {
        return Err(EarlyMapError::AddressTooLarge { physical });
    }
    let pages = (end - first).div_ceil(PAGE_SIZE) as usize;
    let _guard = WRITE_LOCK.lock();
    if RETIRED.load(Ordering::SeqCst) {
        return Err(EarlyMapError::Retired);
    }
    let slot = NEXT_SLOT.load(Ordering::Relaxed);
    if slot + pages > WINDOW_PAGES {
        return Err(EarlyMapError::WindowFull { pages });
    }
    // The engine's own encoding (MAIR indices as boot.s sets them up).
    let attributes = match memory {
        Memory::Device => Attributes::DEVICE,
        Memory::NormalReadOnly => Attributes::KERNEL_RO,
        Memory::NormalReadWrite => Attributes::KERNEL_RW,
    };
    for i in 0..pages {
        let descriptor = descriptor::leaf(3, (first + i as u64 * PAGE_SIZE) & OUTPUT_MASK, &attributes, false);
        // SAFETY: `slot + i` is below WINDOW_PAGES (checked above), the slot
        // is unused (slots are handed out once, under WRITE_LOCK), and the
        // table is the boot L3 table of the window, which stays live for the
        // kernel's life. An invalid -> valid write needs no break-before-make.
        unsafe {
            core::ptr::addr_of_mut!(boot_l3_fixmap[slot + i]).write_volatile(descriptor);
        }
    }
    NEXT_SLOT.store(slot + pages, Ordering::Relaxed);
    // Make the new entries visible to the table walker before any access.
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
    Ok(WINDOW_BASE as usize + slot * PAGE_SIZE as usize + (physical - first) as usize)
}
