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
//   304     fpcr        312 fpsr     320..832 q0..q31
// The FP/SIMD registers are part of every task's context: EL0 may use them
// (CPACR_EL1.FPEN), compiled code keeps values in them across system calls,
// and the kernel's own code uses them too.

.equ FRAME_SIZE, 832

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
    mrs     x1, fpcr
    mrs     x2, fpsr
    stp     x1, x2, [sp, #304]
    add     x1, sp, #320
    stp     q0, q1, [x1, #0]
    stp     q2, q3, [x1, #32]
    stp     q4, q5, [x1, #64]
    stp     q6, q7, [x1, #96]
    stp     q8, q9, [x1, #128]
    stp     q10, q11, [x1, #160]
    stp     q12, q13, [x1, #192]
    stp     q14, q15, [x1, #224]
    stp     q16, q17, [x1, #256]
    stp     q18, q19, [x1, #288]
    stp     q20, q21, [x1, #320]
    stp     q22, q23, [x1, #352]
    stp     q24, q25, [x1, #384]
    stp     q26, q27, [x1, #416]
    stp     q28, q29, [x1, #448]
    stp     q30, q31, [x1, #480]
    mov     x0, sp
    bl      handle_exception
trap_restore:
    add     x1, sp, #320
    ldp     q0, q1, [x1, #0]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldp     q8, q9, [x1, #128]
    ldp     q10, q11, [x1, #160]
    ldp     q12, q13, [x1, #192]
    ldp     q14, q15, [x1, #224]
    ldp     q16, q17, [x1, #256]
    ldp     q18, q19, [x1, #288]
    ldp     q20, q21, [x1, #320]
    ldp     q22, q23, [x1, #352]
    ldp     q24, q25, [x1, #384]
    ldp     q26, q27, [x1, #416]
    ldp     q28, q29, [x1, #448]
    ldp     q30, q31, [x1, #480]
    ldp     x1, x2, [sp, #304]
    msr     fpcr, x1
    msr     fpsr, x2
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
