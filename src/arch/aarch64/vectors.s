// Exception vectors for EL1: all 16 entries (4 sources x 4 kinds).
//
// Owns: saving the interrupted context into a TrapFrame on the current stack,
// calling the Rust dispatcher `handle_exception(frame)`, and restoring the
// (possibly edited) frame on return.
// Must never: decide anything; every policy lives in exception.rs.
//
// TrapFrame layout (must match arch::aarch64::exception::TrapFrame):
//   0..248  x0..x30     248 sp_el0   256 elr   264 spsr
//   272     esr         280 far      288 vector index   296 padding

.equ FRAME_SIZE, 304

.macro vector_entry index
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       trap_common
.endm

.section .text
.balign 2048
.global exception_vectors
exception_vectors:
    vector_entry 0      // current EL, SP_EL0: synchronous
    vector_entry 1      //                     IRQ
    vector_entry 2      //                     FIQ
    vector_entry 3      //                     SError
    vector_entry 4      // current EL, SP_ELx: synchronous
    vector_entry 5      //                     IRQ
    vector_entry 6      //                     FIQ
    vector_entry 7      //                     SError
    vector_entry 8      // lower EL, AArch64:  synchronous
    vector_entry 9      //                     IRQ
    vector_entry 10     //                     FIQ
    vector_entry 11     //                     SError
    vector_entry 12     // lower EL, AArch32:  synchronous
    vector_entry 13     //                     IRQ
    vector_entry 14     //                     FIQ
    vector_entry 15     //                     SError

trap_common:
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
    mov     x0, sp
    bl      handle_exception
trap_restore:
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

// Enters a task: saves the kernel's callee-saved registers and stack pointer
// in a KernelContext, copies the task's TrapFrame onto the kernel stack and
// returns to EL0 through the ordinary restore path. Exceptions from EL0
// then find the kernel stack exactly where enter_user left it.
//   x0 = *const TrapFrame   x1 = *mut KernelContext (13 words)
.global enter_user
enter_user:
    stp     x19, x20, [x1, #0]
    stp     x21, x22, [x1, #16]
    stp     x23, x24, [x1, #32]
    stp     x25, x26, [x1, #48]
    stp     x27, x28, [x1, #64]
    stp     x29, x30, [x1, #80]
    mov     x2, sp
    str     x2, [x1, #96]
    sub     sp, sp, #FRAME_SIZE
    mov     x2, #0
1:  ldr     x3, [x0, x2]
    str     x3, [sp, x2]
    add     x2, x2, #8
    cmp     x2, #FRAME_SIZE
    b.lo    1b
    b       trap_restore

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
    ldr     x2, [x0, #96]
    mov     sp, x2
    ret
