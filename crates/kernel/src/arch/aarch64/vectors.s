// Exception vectors for EL1: all 16 entries (4 sources x 4 kinds).
//
// Owns: saving the interrupted registers into a TrapFrame, calling the Rust
// dispatcher, and restoring the (possibly edited, possibly another task's)
// frame on return.
// Must never: decide anything; every policy lives in exception.rs and the
// task layer. Touch an FP/SIMD register: the kernel is soft-float, and a
// task's FP/SIMD state is saved lazily (fpsimd.s, task.rs).
//
// TrapFrame layout (must match arch::aarch64::exception::TrapFrame):
//   0..248  x0..x30     248 sp_el0   256 elr   264 spsr
//   272     esr         280 far      288 vector index   296 tpidr_el0
//
// Where the frame lives:
// - From EL1 (vectors 0-7): on the kernel stack, as usual.
// - From EL0 (vectors 8-15): in the running task's own save area. While a
//   task runs at EL0, SP_EL1 points just past its save area, so the entry's
//   `sub sp` lands on it and the registers go straight into the task: a
//   task switch copies nothing, it only resumes from another save area.
//   Once saved, the handler runs on this core's kernel stack, found through
//   TPIDR_EL1 (this core's KernelContext, set by enter_user).

.equ FRAME_SIZE, 304
.equ KERNEL_SP, 96          // KernelContext.sp

.macro vector_entry index, path
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       \path
.endm

// x0 holds the vector index, x0/x1 are saved already.
.macro save_registers
    str     x0, [sp, #288]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, sp_el0
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    mrs     x1, esr_el1
    mrs     x2, far_el1
    stp     x1, x2, [sp, #272]
.endm

// Restores the frame at sp and pops it.
.macro restore_registers_and_return
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x30, x1, [sp, #240]
    msr     sp_el0, x1
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #FRAME_SIZE
    eret
.endm

.section .text
.balign 2048
.global exception_vectors
exception_vectors:
    vector_entry 0, trap_kernel     // current EL, SP_EL0: synchronous
    vector_entry 1, trap_kernel     //                     IRQ
    vector_entry 2, trap_kernel     //                     FIQ
    vector_entry 3, trap_kernel     //                     SError
    vector_entry 4, trap_kernel     // current EL, SP_ELx: synchronous
    vector_entry 5, trap_kernel     //                     IRQ
    vector_entry 6, trap_kernel     //                     FIQ
    vector_entry 7, trap_kernel     //                     SError
    vector_entry 8, trap_user       // lower EL, AArch64:  synchronous
    vector_entry 9, trap_user       //                     IRQ
    vector_entry 10, trap_user      //                     FIQ
    vector_entry 11, trap_user      //                     SError
    vector_entry 12, trap_user      // lower EL, AArch32:  synchronous
    vector_entry 13, trap_user      //                     IRQ
    vector_entry 14, trap_user      //                     FIQ
    vector_entry 15, trap_user      //                     SError

// An exception taken from EL1: the frame is on the kernel stack.
trap_kernel:
    save_registers
    mov     x0, sp
    bl      handle_exception
    restore_registers_and_return

// An exception taken from EL0: the frame is the running task's save area.
trap_user:
    save_registers
    mrs     x1, tpidr_el0
    str     x1, [sp, #296]
    mov     x0, sp
    mrs     x1, tpidr_el1
    ldr     x1, [x1, #KERNEL_SP]
    mov     sp, x1
    bl      handle_user_exception
    // x0: the save area of the task to run now (this one or another).
resume_user:
    mov     sp, x0
    ldr     x1, [sp, #296]
    msr     tpidr_el0, x1
    restore_registers_and_return

// Enters task mode: saves the kernel's callee-saved registers and stack
// pointer in this core's KernelContext, makes TPIDR_EL1 point at it (the
// EL0 vectors find the kernel stack there), and resumes the task from its
// save area.
//   x0 = *mut TrapFrame (the task's save area)   x1 = *mut KernelContext
.global enter_user
enter_user:
    stp     x19, x20, [x1, #0]
    stp     x21, x22, [x1, #16]
    stp     x23, x24, [x1, #32]
    stp     x25, x26, [x1, #48]
    stp     x27, x28, [x1, #64]
    stp     x29, x30, [x1, #80]
    mov     x2, sp
    str     x2, [x1, #KERNEL_SP]
    msr     tpidr_el1, x1
    b       resume_user

// Leaves task mode: back to the caller of enter_user, as if it returned.
//   x0 = *const KernelContext
.global return_to_kernel
return_to_kernel:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldr     x2, [x0, #KERNEL_SP]
    mov     sp, x2
    ret
