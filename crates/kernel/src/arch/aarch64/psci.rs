//! PSCI (Arm's Power State Coordination Interface): the firmware or
//! hypervisor calls that start a core and power the machine off.
//!
//! Owns: the function numbers and the `hvc`/`smc` instruction for each
//! conduit. Must never: be called with a conduit the DTB did not name (an
//! `smc` with no firmware behind it is undefined at EL1 under a hypervisor).

use core::arch::asm;

use folio_core::dtb::PsciConduit;

/// CPU_ON, SMC64 calling convention.
const CPU_ON: u64 = 0xC400_0003;
/// SYSTEM_OFF.
const SYSTEM_OFF: u64 = 0x8400_0008;

/// One PSCI call with up to three arguments; returns x0.
fn call(conduit: PsciConduit, function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = function;
    // SAFETY: a PSCI call through the conduit the DTB names. The functions
    // used here start another core or end the machine; neither touches this
    // core's memory, and the SMC calling convention preserves x4-x17 and
    // the stack.
    unsafe {
        match conduit {
            PsciConduit::Hvc => asm!("hvc #0", inout("x0") x0, in("x1") a1, in("x2") a2, in("x3") a3, options(nostack)),
            PsciConduit::Smc => asm!("smc #0", inout("x0") x0, in("x1") a1, in("x2") a2, in("x3") a3, options(nostack)),
        }
    }
    x0 as i64
}

/// Starts the core with affinity `mpidr` at physical address `entry` with
/// x0 = `context`. Returns PSCI's status (0 success, negative an error).
pub fn cpu_on(conduit: PsciConduit, mpidr: u64, entry: u64, context: u64) -> i64 {
    call(conduit, CPU_ON, mpidr, entry, context)
}

/// Powers the machine off. Returns only if the call failed.
pub fn system_off(conduit: PsciConduit) {
    call(conduit, SYSTEM_OFF, 0, 0, 0);
}
