//! Ending the machine: PSCI SYSTEM_OFF, semihosting SYS_EXIT, or a halt.
//!
//! Owns: the chosen exit method and PSCI conduit. Must never: issue a
//! semihosting call unless the command line asked for it (`hlt` is undefined
//! on real hardware), or return.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use folio_core::bootargs::ExitMethod;
use folio_core::dtb::PsciConduit;

const SEMIHOSTING_SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

const NONE: u8 = 0;
const HVC: u8 = 1;
const SMC: u8 = 2;
const SEMIHOSTING: u8 = 3;

static METHOD: AtomicU8 = AtomicU8::new(NONE);

/// Chooses how [`exit`] ends the machine.
pub fn configure(method: ExitMethod, conduit: Option<PsciConduit>) {
    let value = match (method, conduit) {
        (ExitMethod::Semihosting, _) => SEMIHOSTING,
        (ExitMethod::Psci, Some(PsciConduit::Hvc)) => HVC,
        (ExitMethod::Psci, Some(PsciConduit::Smc)) => SMC,
        (ExitMethod::Psci, None) | (ExitMethod::Halt, _) => NONE,
    };
    METHOD.store(value, Ordering::SeqCst);
}

/// Ends the machine with `status` (0 = success).
pub fn exit(status: u32) -> ! {
    crate::result!("exit", status == 0, status = status);
    match METHOD.load(Ordering::SeqCst) {
        SEMIHOSTING => {
            let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
            // SAFETY: only reached when the command line says QEMU runs with
            // -semihosting; the call reads the two-word block and ends QEMU.
            unsafe {
                asm!("hlt #0xf000", in("x0") SEMIHOSTING_SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
            }
        }
        // SYSTEM_OFF does not return when it succeeds; if it fails we fall
        // through to the halt below.
        HVC => super::psci::system_off(PsciConduit::Hvc),
        SMC => super::psci::system_off(PsciConduit::Smc),
        _ => {}
    }
    crate::println!("folio: halted; it is safe to power off");
    super::cpu::halt()
}
