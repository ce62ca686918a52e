//! Checks that need exact control of registers, for the kernel's test
//! programs: what a test needs to say in assembly lives here, so the
//! programs themselves stay free of `unsafe`.

/// Puts `tag` in both halves of all 32 FP/SIMD registers, makes a yield
/// system call, spins `spins` times (long enough for the timer to preempt
/// the task and other tasks to run), and returns how many of the 64 halves
/// came back changed: the kernel must keep each task's FP/SIMD state its
/// own. (Not in a soft-float build, which has no FP/SIMD instructions.)
#[cfg(target_feature = "neon")]
pub fn simd_registers_survive(tag: u64, spins: u64) -> u64 {
    let bad: u64;
    // SAFETY: only registers change; the SVC is a yield, which returns.
    unsafe {
        core::arch::asm!(
            "dup v0.2d, {tag}",
            "dup v1.2d, {tag}",
            "dup v2.2d, {tag}",
            "dup v3.2d, {tag}",
            "dup v4.2d, {tag}",
            "dup v5.2d, {tag}",
            "dup v6.2d, {tag}",
            "dup v7.2d, {tag}",
            "dup v8.2d, {tag}",
            "dup v9.2d, {tag}",
            "dup v10.2d, {tag}",
            "dup v11.2d, {tag}",
            "dup v12.2d, {tag}",
            "dup v13.2d, {tag}",
            "dup v14.2d, {tag}",
            "dup v15.2d, {tag}",
            "dup v16.2d, {tag}",
            "dup v17.2d, {tag}",
            "dup v18.2d, {tag}",
            "dup v19.2d, {tag}",
            "dup v20.2d, {tag}",
            "dup v21.2d, {tag}",
            "dup v22.2d, {tag}",
            "dup v23.2d, {tag}",
            "dup v24.2d, {tag}",
            "dup v25.2d, {tag}",
            "dup v26.2d, {tag}",
            "dup v27.2d, {tag}",
            "dup v28.2d, {tag}",
            "dup v29.2d, {tag}",
            "dup v30.2d, {tag}",
            "dup v31.2d, {tag}",
            "mov x8, #{yield_call}",
            "svc #0",
            "2:",
            "subs {spins}, {spins}, #1",
            "b.ne 2b",
            "mov {bad}, #0",
            "umov x9, v0.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v1.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v2.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v3.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v4.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v5.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v6.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v7.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v8.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v9.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v10.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v11.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v12.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v13.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v14.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v15.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v16.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v17.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v18.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v19.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v20.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v21.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v22.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v23.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v24.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v25.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v26.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v27.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v28.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v29.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v30.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            "umov x9, v31.d[1]", "cmp x9, {tag}", "cinc {bad}, {bad}, ne",
            tag = in(reg) tag,
            spins = inout(reg) spins.max(1) => _,
            bad = out(reg) bad,
            yield_call = const crate::nr::YIELD,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x8") _, out("x9") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    bad
}

/// The thread pointer (TPIDR_EL0): each task's own, saved and restored by
/// the kernel, zero at start.
pub fn thread_pointer() -> u64 {
    let value: u64;
    // SAFETY: reads a register EL0 owns.
    unsafe { core::arch::asm!("mrs {}, tpidr_el0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Sets the thread pointer (TPIDR_EL0).
pub fn set_thread_pointer(value: u64) {
    // SAFETY: writes a register EL0 owns; nothing in folio-rt uses it.
    unsafe { core::arch::asm!("msr tpidr_el0, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
}

/// The read-only thread pointer (TPIDRRO_EL0), which folio clears: no
/// value set by the kernel or another task may reach a task through it.
pub fn read_only_thread_pointer() -> u64 {
    let value: u64;
    // SAFETY: reads a register EL0 may read.
    unsafe { core::arch::asm!("mrs {}, tpidrro_el0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Runs one SVE instruction (RDVL): folio keeps SVE trapped, so the task
/// is stopped here (where the CPU has no SVE, the instruction is undefined
/// and the task is stopped all the same). Returns only if neither happened.
pub fn use_sve() -> u64 {
    let vector_length: u64;
    // SAFETY: reads the SVE vector length into a register; no memory.
    unsafe { core::arch::asm!(".inst 0x04bf5020", out("x0") vector_length, options(nomem, nostack)) };
    vector_length
}

/// Puts `tag` in all 32 FP/SIMD registers (a task that uses FP/SIMD, for
/// the benchmark beside one that does not).
#[cfg(target_feature = "neon")]
pub fn fill_simd_registers(tag: u64) {
    // SAFETY: only FP/SIMD registers change (declared clobbered).
    unsafe {
        core::arch::asm!(
            "dup v0.2d, {tag}", "dup v1.2d, {tag}", "dup v2.2d, {tag}", "dup v3.2d, {tag}",
            "dup v4.2d, {tag}", "dup v5.2d, {tag}", "dup v6.2d, {tag}", "dup v7.2d, {tag}",
            "dup v8.2d, {tag}", "dup v9.2d, {tag}", "dup v10.2d, {tag}", "dup v11.2d, {tag}",
            "dup v12.2d, {tag}", "dup v13.2d, {tag}", "dup v14.2d, {tag}", "dup v15.2d, {tag}",
            "dup v16.2d, {tag}", "dup v17.2d, {tag}", "dup v18.2d, {tag}", "dup v19.2d, {tag}",
            "dup v20.2d, {tag}", "dup v21.2d, {tag}", "dup v22.2d, {tag}", "dup v23.2d, {tag}",
            "dup v24.2d, {tag}", "dup v25.2d, {tag}", "dup v26.2d, {tag}", "dup v27.2d, {tag}",
            "dup v28.2d, {tag}", "dup v29.2d, {tag}", "dup v30.2d, {tag}", "dup v31.2d, {tag}",
            tag = in(reg) tag,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _,
            out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _,
            out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _, out("v18") _,
            out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _,
            out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _,
            out("v31") _,
            options(nomem, nostack, preserves_flags),
        );
    }
}

/// A seeded xorshift64 generator: the fuzzers' reproducible randomness
/// (the same seed, the same sequence).
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
