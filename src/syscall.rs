//! System-call numbers and the argument checks every call makes, with no
//! hardware (so they are tested on the host).
//!
//! | x8 | call | arguments | x0 on return |
//! |---|---|---|---|
//! | 0 | exit | x0 = status | (does not return) |
//! | 1 | write | x0 = buffer, x1 = length (at most 4096) | 0, or `BadAddress`, `TooLong` |
//! | 2 | yield | - | 0 |
//! | 3 | call | x0 = handle, x1..x4 = message | status (`ipc::IpcError`), x1..x4 = reply |
//! | 4 | recv | x0 = handle | status, x1..x4 = message, x5 = badge |
//! | 5 | reply | x0..x3 = message | status |
//! | 6 | reply_recv | x0 = handle, x1..x4 = reply | as recv |
//! | 7 | signal | x0 = notification handle (its badge is ORed in) | status |
//! | 8 | wait | x0 = notification handle | status, x1 = the word |
//! | 9 | recv_nonblocking | x0 = handle | as recv, or `WouldBlock` |
//! | 10 | recv_timed | x0 = handle, x1 = timeout in counter ticks | as recv, or `TimedOut` |
//!
//! Any other number returns `Unknown`. A pointer must lie wholly in the
//! caller's own mappings, readable from EL0; nothing a task passes can make
//! the kernel touch memory the task could not.

use alloc::vec::Vec;

pub use crate::abi::nr::*;
use crate::abi::status;

/// The longest write.
pub const MAX_WRITE: u64 = 4096;

/// Status codes of the non-IPC calls (distinct from `ipc::IpcError`'s 1..4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SysError {
    BadAddress = status::BAD_ADDRESS,
    TooLong = status::TOO_LONG,
    Unknown = status::UNKNOWN_CALL,
}

/// The physical pieces of the user buffer [va, va + len). `translate`
/// gives a user page's frame when the page is mapped and readable at EL0.
pub fn user_buffer(
    va: u64,
    len: u64,
    page_size: u64,
    translate: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<Vec<(u64, u64)>, SysError> {
    if len > MAX_WRITE {
        return Err(SysError::TooLong);
    }
    let end = va.checked_add(len).ok_or(SysError::BadAddress)?;
    if end > crate::elf::USER_END {
        return Err(SysError::BadAddress);
    }
    let mut pieces = Vec::new();
    let mut at = va;
    while at < end {
        let page = at & !(page_size - 1);
        let frame = translate(page).ok_or(SysError::BadAddress)?;
        let take = (page + page_size).min(end) - at;
        pieces.push((frame + (at - page), take));
        at += take;
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(page: u64) -> Option<u64> {
        // User pages 0x40_0000..0x40_3000 map to frames at 0x8000_0000 + offset.
        (0x40_0000..0x40_3000).contains(&page).then(|| 0x8000_0000 + (page - 0x40_0000))
    }

    #[test]
    fn a_buffer_across_pages_is_split_at_page_boundaries() {
        let pieces = user_buffer(0x40_0ff0, 0x20, 0x1000, &mut mapped).unwrap();
        assert_eq!(pieces, vec![(0x8000_0ff0, 0x10), (0x8000_1000, 0x10)]);
        assert_eq!(user_buffer(0x40_0000, 0, 0x1000, &mut mapped), Ok(vec![]));
    }

    #[test]
    fn kernel_unmapped_wrapping_and_long_buffers_are_refused() {
        assert_eq!(user_buffer(0xFFFF_8000_0000_0000, 8, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(0x50_0000, 8, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(0x40_2ff8, 0x10, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(u64::MAX - 3, 8, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(0x40_0000, MAX_WRITE + 1, 0x1000, &mut mapped), Err(SysError::TooLong));
        assert_eq!(user_buffer((1 << 48) - 4, 8, 0x1000, &mut |_| Some(0)), Err(SysError::BadAddress));
    }
}
