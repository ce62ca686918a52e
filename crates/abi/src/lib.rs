//! The system-call interface as numbers: shared word for word by the kernel
//! (`crate::syscall`, `crate::ipc`) and the EL0 library (`user/src/lib.rs`
//! includes this file), so the two sides cannot drift apart.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

pub mod memsvc;
pub mod report;

/// System-call numbers, passed in x8.
pub mod nr {
    pub const EXIT: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const YIELD: u64 = 2;
    pub const CALL: u64 = 3;
    pub const RECV: u64 = 4;
    pub const REPLY: u64 = 5;
    pub const REPLY_RECV: u64 = 6;
    pub const SIGNAL: u64 = 7;
    pub const WAIT: u64 = 8;
    pub const RECV_NONBLOCKING: u64 = 9;
    pub const RECV_TIMED: u64 = 10;
    /// The memory calls: only a task holding frame capabilities (the
    /// memory service) may make them; see `crate::syscall`.
    pub const MEM_CAP: u64 = 11;
    pub const MAP_SELF: u64 = 12;
    pub const REMAP_SELF: u64 = 13;
    pub const UNMAP_SELF: u64 = 14;
    pub const TRANSLATE_SELF: u64 = 15;
    pub const MAP_CALLER: u64 = 16;
    pub const UNMAP_CALLER: u64 = 17;
    pub const TABLE_FRAMES: u64 = 18;
    /// Names a range of the caller's own address space for the kernel's
    /// fault reports (see [`label`](super::label)).
    pub const LABEL: u64 = 19;
    /// Maps whole last-level-table spans of the caller's vmemmap window by
    /// linking a shared, read-only last-level table (a memory call; see
    /// [`map::MAX_SHARED_LINKS`](super::map::MAX_SHARED_LINKS)).
    pub const LINK_SHARED_SELF: u64 = 20;
    /// Sets the caller's own priority: any priority from 0 up to the one
    /// it was started with (a server lowers itself to work in the
    /// background below its clients, and raises itself back to serve).
    pub const SET_PRIORITY: u64 = 21;
    /// Starts a packaged program as a new task (only the launcher may; see
    /// [`spawn`](super::spawn)).
    pub const SPAWN: u64 = 22;
    /// Moves pool frames the caller holds into its heap window, for good
    /// (see [`heap`](super::heap)).
    pub const GROW_HEAP: u64 = 23;
    /// `reply` to the owed caller, then take a message that already waits
    /// (as `recv_nonblocking`); when none does, the caller drops to the
    /// priority in x5 (at most the one it was started with) and yields,
    /// and the call returns `WOULD_BLOCK` when it runs again. A server's
    /// one call between answering and its background work: no third call
    /// to lower itself, and nothing waiting is left behind at the lower
    /// priority.
    pub const REPLY_POLL: u64 = 24;
}

/// GROW_HEAP: x0 = pa, x1 = size (whole pages, inside one of the caller's
/// pool capabilities, none of it mapped into a client). The kernel maps
/// the frames read/write at the end of the caller's heap window
/// ([`SERVICE_HEAP_WINDOW`](crate::memsvc::layout::SERVICE_HEAP_WINDOW)),
/// unmaps them from its pool window, and takes them out of its
/// capabilities, so no memory call can reach them again: they are the
/// caller's own memory until it dies. Returns x1 = the address they are
/// mapped at. Errors: `NOT_PERMITTED` (no capability holds them, or a
/// client has some mapped), `INVALID_ARGUMENT` (not whole pages),
/// `OUT_OF_MEMORY` (the window is full, page-table frames, or
/// [`MAX_CAPS`](heap::MAX_CAPS) capabilities).
pub mod heap {
    /// The bytes a task's heap window holds.
    pub const MAX_BYTES: u64 = 64 << 30;
    /// Capabilities a task holds at most: taking a range out of the middle
    /// of one splits it in two.
    pub const MAX_CAPS: usize = 64;
}

/// SPAWN: x0 = the program (its index in the set the kernel packaged for
/// the launcher), x1 = its priority (at most the launcher's), x2 = the
/// child's handles, packed 8 bits each from bit 0 (at most
/// [`MAX_HANDLES`](spawn::MAX_HANDLES)): a handle number of the
/// launcher's to pass, [`OWN_ENDPOINT`](spawn::OWN_ENDPOINT) for a fresh
/// endpoint of the child's own (to wait on with a timeout; it goes with the
/// child), [`NO_HANDLE`](spawn::NO_HANDLE) to end the list. x3 and x4 =
/// the child's x0 and x1 at start.
/// Every handle passed carries the child's badge, fresh from the kernel
/// (they count up from [`FIRST_BADGE`](spawn::FIRST_BADGE), so none is
/// handed out twice in a run); SPAWN returns it in x1 (x2 = the child's
/// task number). The launcher learns of the child's death as any server
/// does: pass it a handle to an endpoint of the launcher's own that gives
/// death notices. Errors: `NOT_PERMITTED` (not the launcher),
/// `INVALID_ARGUMENT` (no such program, too high a priority),
/// `INVALID_HANDLE`, `OUT_OF_MEMORY` (the kernel's frames,
/// [`MAX_LIVE`](spawn::MAX_LIVE) children alive, or an endpoint's death
/// notices all reserved).
pub mod spawn {
    /// Ends SPAWN's handle list (so only the launcher's handles 0..=253
    /// can be passed).
    pub const NO_HANDLE: u64 = 0xff;
    /// In SPAWN's handle list: a fresh endpoint of the child's own.
    pub const OWN_ENDPOINT: u64 = 0xfe;
    /// Handles one SPAWN gives at most.
    pub const MAX_HANDLES: usize = 8;
    /// Children of the launcher alive (or dead but not yet cleaned up) at
    /// once.
    pub const MAX_LIVE: usize = 64;
    /// The first badge SPAWN hands out; later ones count up from it (badges
    /// below it are the boot-time set's).
    pub const FIRST_BADGE: u64 = 1 << 32;
}

/// LABEL: x0 = va, x1 = size, x2 = when the label applies, x3/x4 = the
/// text (pointer, length). A fault whose address lies in a labelled range
/// is reported with the label (the newest label wins where ranges
/// overlap). Any task may label its own address space; the kernel keeps at
/// most [`MAX_LABELS`] per task (`OUT_OF_MEMORY` past that) and charges them
/// to the task's own bounded table.
pub mod label {
    /// The label applies to every fault in the range.
    pub const ON_ANY_FAULT: u64 = 0;
    /// The label applies only to a write that hits a read-only page (a
    /// permission fault on a write): e.g. a write to an HVO shared tail.
    pub const ON_WRITE_TO_READ_ONLY: u64 = 1;
    /// Labels one task may hold.
    pub const MAX_LABELS: usize = 16;
    /// The longest label, in bytes (printable ASCII).
    pub const MAX_LEN: u64 = 64;
}

/// MAP_SELF / REMAP_SELF entries: `[va, pa, pages, flags]`.
pub mod map {
    /// Read/write (otherwise read-only). Never executable.
    pub const WRITABLE: u64 = 1 << 0;
    /// Every page maps the one frame `pa` (a shared tail).
    pub const REPEAT: u64 = 1 << 1;
    /// Entries one call takes at most: as many as pages, so a batch of
    /// scattered frames is still one call (one break-before-make batch).
    pub const MAX_ENTRIES: u64 = 16384;
    /// Pages one REMAP_SELF changes at most (one break-before-make batch).
    pub const MAX_REMAP_PAGES: u64 = 16384;
    /// Frame capability kinds (MEM_CAP's x1, bits 0..8).
    pub const CAP_POOL: u64 = 1;
    pub const CAP_META: u64 = 2;
    /// MEM_CAP's x1, bits 8..16: for a pool capability reserved as huge
    /// pages of one size (`hugepages=`), that size's shift; 0 otherwise.
    pub const CAP_FOLIO_SHIFT: u32 = 8;
    /// LINK_SHARED_SELF: x0 = va (aligned to a last-level table's span,
    /// in the vmemmap window), x1 = how many consecutive spans, x2 = the
    /// frame every entry maps read-only (one the caller holds). At most
    /// this many spans per call.
    pub const MAX_SHARED_LINKS: u64 = 4096;
    /// Distinct shared tables one task may hold (`OUT_OF_MEMORY` past it):
    /// one per shared page it links.
    pub const MAX_SHARED_TABLES: usize = 64;
    /// Grants (MAP_CALLER ranges) others may hold in one task at once:
    /// each is a kernel record and page-table entries, so a hostile granter
    /// gets `OUT_OF_MEMORY` past this instead of exhausting the kernel's
    /// heap. The memory service holds each client to as many folios, so
    /// the kernel never refuses it a client's mapping.
    pub const MAX_GRANTS: usize = 1024;
    /// Empty page tables UNMAP_CALLER leaves in a client's tree ("warm
    /// tables": the next MAP_CALLER in the same region makes, zeroes and
    /// counts none, and this unmap frees and invalidates none). Past this
    /// many, the tables an unmap empties are freed as UNMAP_SELF frees
    /// them. They stay in the count MAP_CALLER and UNMAP_CALLER return, so
    /// the granter keeps charging the client for them until it maps there
    /// again or dies: at most this many empty tables, and the tables above
    /// them, more than it uses.
    pub const KEPT_CLIENT_TABLES: usize = 8;
}

/// Where a task's own memory lies in its address space: its image (linked
/// at [`IMAGE_BASE`](task::IMAGE_BASE)) and its stack. Everything else a task
/// reaches was mapped for it by the kernel or the memory service.
pub mod task {
    /// Where EL0 programs are linked (`user/linker.ld`).
    pub const IMAGE_BASE: u64 = 0x40_0000;
    /// Top of every task's stack.
    pub const STACK_TOP: u64 = 0x7F_0000_0000;
    /// The stack's size: 64 KiB, at least one page of any granule.
    pub const STACK_SIZE: u64 = 64 << 10;
    /// x2 at a task's start: what the task may use. This bit: it may read
    /// the PMU cycle counter (PMCCNTR_EL0; only where the CPU has a PMU),
    /// otherwise it times itself with the virtual counter.
    pub const START_CYCLE_COUNTER: u64 = 1 << 0;
    /// The task's IPC buffer ([`crate::ipc`]): one page of its granule,
    /// read-write and its own, 64 KiB above its stack's top (aligned for
    /// every granule).
    pub const IPC_BUFFER: u64 = STACK_TOP + (64 << 10);
}

/// Long messages: up to [`MAX_MESSAGE_WORDS`](ipc::MAX_MESSAGE_WORDS)
/// words, the first four in x1..x4 as always, the rest in the IPC buffers
/// ([`task::IPC_BUFFER`]) at the same word index (word 4 at buffer word 4).
///
/// The long form of `call`, `recv` and `reply_recv` is the call's number
/// plus [`LONG`](ipc::LONG). It takes x5 = the words sent (`call`,
/// `reply_recv`; at most `MAX_MESSAGE_WORDS`, else `INVALID_ARGUMENT`) and
/// x6 = the most words this task accepts (0: `MAX_MESSAGE_WORDS`), and
/// returns x6 = the words the other side sent. A message longer than the
/// receiver accepts arrives cut to what it accepts, with x0 = `TRUNCATED`;
/// the buffer past that is left as it was. The short forms accept four
/// words: a longer message reaches them truncated. Messages of four words
/// or fewer never touch a buffer.
pub mod ipc {
    /// Added to `nr::CALL`, `nr::RECV` and `nr::REPLY_RECV`: the long form.
    pub const LONG: u64 = 1 << 8;
    /// The longest message.
    pub const MAX_MESSAGE_WORDS: u64 = 64;
    /// Words carried in registers (x1..x4).
    pub const REGISTER_WORDS: u64 = 4;
    /// x5 of a `recv` that returns a bound notification's word (x1).
    pub const NOTIFICATION_BADGE: u64 = u64::MAX;
    /// x5 of a `recv` that returns a death notice: x1 = the dead client's
    /// badge, x2 = its exit status (one notice per handle it held to the
    /// endpoint; the owner asked for them).
    pub const DEATH_BADGE: u64 = u64::MAX - 1;
}

/// Status codes returned in x0 (0 is success).
pub mod status {
    pub const OK: u64 = 0;
    pub const INVALID_HANDLE: u64 = 1;
    pub const NOT_OWNER: u64 = 2;
    pub const NO_CALLER: u64 = 3;
    pub const DEAD_PEER: u64 = 4;
    pub const TIMED_OUT: u64 = 5;
    pub const WOULD_BLOCK: u64 = 6;
    pub const WRONG_KIND: u64 = 7;
    pub const OUT_OF_MEMORY: u64 = 12;
    pub const NOT_PERMITTED: u64 = 13;
    pub const BAD_ADDRESS: u64 = 14;
    pub const INVALID_ARGUMENT: u64 = 15;
    pub const TOO_LONG: u64 = 22;
    /// A message longer than the receiver accepts arrived cut short.
    pub const TRUNCATED: u64 = 23;
    pub const UNKNOWN_CALL: u64 = 38;
}
