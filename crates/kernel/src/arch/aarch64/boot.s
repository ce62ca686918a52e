// folio boot code: the first instructions the firmware runs.
//
// Owns: the arm64 Image header, the drop from EL2 to EL1, the boot page
// tables, turning the MMU on, and the jump to Rust at the upper-half address
// the kernel is linked at.
// Must never: run Rust code with the MMU off (atomics and unaligned accesses
// are not safe on Device memory on a real Cortex-A72), depend on where it was
// loaded (everything before the MMU is on is PC-relative), or touch EL2 state
// after the drop to EL1.
//
// Register use until Rust starts (callee-saved, so helpers may clobber x0-x18):
//   x19  DTB physical address as the firmware passed it in x0 (or 0 / ATAGS)
//   x20  exception level the firmware entered us at (1, 2 or 3)
//   x21  physical address of _start (where the image was loaded)
//   x22  size of the image, .bss and boot data included

.equ KERNEL_VIRT_BASE,  0xFFFF800000000000
.equ PAGE_SHIFT,        12
.equ BOOT_L3_TABLES,    8            // kernel image map: 8 x 2 MiB
.equ FIXMAP_L2_FIRST,   510          // fixmap window: L2 entries 510 and 511
.equ FIXMAP_L3_TABLES,  2

// Descriptor bits (4 KiB granule, stage 1)
.equ DESC_TABLE,        0x3
.equ DESC_PAGE,         0x3
.equ DESC_BLOCK,        0x1
.equ DESC_AF,           (1 << 10)
.equ DESC_SH_INNER,     (3 << 8)
.equ DESC_ATTR_NORMAL,  (0 << 2)     // MAIR index 0
.equ DESC_UXN,          (1 << 54)
.equ NORMAL_RW_KERNEL,  (DESC_AF | DESC_SH_INNER | DESC_ATTR_NORMAL | DESC_UXN)

// MAIR: 0 = Normal WB RA/WA, 1 = Device-nGnRE, 2 = Normal non-cacheable
.equ MAIR_VALUE,        0x4404FF

// TCR: T0SZ = T1SZ = 16 (48-bit VA), 4K granules, WBWA inner shareable walks.
.equ TCR_T0SZ,          16
.equ TCR_T1SZ,          (16 << 16)
.equ TCR_IRGN0_WBWA,    (1 << 8)
.equ TCR_ORGN0_WBWA,    (1 << 10)
.equ TCR_SH0_INNER,     (3 << 12)
.equ TCR_TG0_4K,        (0 << 14)
.equ TCR_IRGN1_WBWA,    (1 << 24)
.equ TCR_ORGN1_WBWA,    (1 << 26)
.equ TCR_SH1_INNER,     (3 << 28)
.equ TCR_TG1_4K,        (2 << 30)
.equ TCR_EPD0,          (1 << 7)
.equ TCR_BASE, (TCR_T0SZ | TCR_T1SZ | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_TG0_4K | TCR_IRGN1_WBWA | TCR_ORGN1_WBWA | TCR_SH1_INNER | TCR_TG1_4K)

// SCTLR_EL1: the ARMv8.0 RES1 bits, MMU and caches off, little endian.
.equ SCTLR_EL1_RES1,    0x30D00800
.equ SCTLR_M,           (1 << 0)
.equ SCTLR_C,           (1 << 2)
.equ SCTLR_SA,          (1 << 3)
.equ SCTLR_I,           (1 << 12)
// EL0 may use DC ZVA (DCZID_EL0.DZP then reads 0): the memory service
// zeroes huge pages with it. Zeroing needs no more rights than a store.
.equ SCTLR_DZE,         (1 << 14)

.macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

// Turns this core's MMU and caches on with TTBR1 = x0 (MAIR, TCR and TTBR0
// already set). No TLB entry the firmware or an earlier boot left may
// survive: local invalidation, as the MMU of no other core uses them yet.
.macro mmu_on_with_ttbr1_x0
    msr     ttbr1_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x0, =(SCTLR_EL1_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I | SCTLR_DZE)
    msr     sctlr_el1, x0
    isb
    ic      iallu
    dsb     nsh
    isb
.endm

.section .text.head, "ax"
.global _start
_start:
    // arm64 Linux Image header (Documentation/arch/arm64/booting.rst). QEMU's
    // -kernel and the Raspberry Pi firmware both honour it and pass x0 = DTB.
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0x80000                 // text_offset: load at a 2 MiB base + 0x80000
    .quad   __image_size            // image_size, .bss included
    .quad   0x8                     // flags: little endian, any page size, place anywhere
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

.section .text.boot, "ax"
primary_entry:
    mov     x19, x0
    adr_l   x21, _start
    ldr     x22, =__image_size
    mrs     x20, CurrentEL
    ubfx    x20, x20, #2, #2
    cmp     x20, #3
    b.eq    entered_at_el3
    cmp     x20, #2
    b.eq    drop_from_el2
    b       running_at_el1

entered_at_el3:
    adr_l   x0, msg_el3
    bl      early_puts
    b       stop_forever

// EL2 -> EL1. Configure only what EL1 needs and never come back: no
// virtualization (HCR_EL2.VM = 0), EL1 is AArch64, EL1 owns the physical and
// virtual timers, no FP/SIMD traps, the GICv3 system registers enabled for EL1.
drop_from_el2:
    mov     x0, #(1 << 31)          // HCR_EL2.RW
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #3              // EL1PCTEN | EL1PCEN
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr        // virtual counter == physical counter
    mrs     x0, midr_el1            // EL1 reads of MIDR/MPIDR see VPIDR/VMPIDR,
    msr     vpidr_el2, x0           // which reset to UNKNOWN values
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mov     x0, #0x33ff             // CPTR_EL2: RES1 bits, TFP = 0
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, id_aa64dfr0_el1     // PMU present: give EL1 all counters, no traps
    ubfx    x0, x0, #8, #4
    cbz     x0, 1f
    mrs     x0, pmcr_el0
    ubfx    x0, x0, #11, #5         // PMCR_EL0.N
    msr     mdcr_el2, x0            // HPMN = N, TPM = TPMCR = 0
1:  mrs     x0, id_aa64pfr0_el1     // GICv3 CPU interface present?
    ubfx    x0, x0, #24, #4
    cbz     x0, 2f
    mrs     x0, S3_4_C12_C9_5       // ICC_SRE_EL2
    mov     x1, #0x9                // Enable | SRE
    orr     x0, x0, x1
    msr     S3_4_C12_C9_5, x0
    isb
2:  ldr     x0, =SCTLR_EL1_RES1
    msr     sctlr_el1, x0
    mov     x0, #0x3c5              // EL1h, D A I F masked
    msr     spsr_el2, x0
    adr_l   x0, running_at_el1
    msr     elr_el2, x0
    eret

running_at_el1:
    msr     daifset, #0xf
    ldr     x0, =SCTLR_EL1_RES1     // MMU and caches off, known state
    msr     sctlr_el1, x0
    mov     x0, #(1 << 20)          // CPACR_EL1.FPEN: EL0 traps (lazy FP/SIMD), SVE/SME trapped
    msr     cpacr_el1, x0
    msr     tpidrro_el0, xzr        // carries nothing to any task
    msr     tpidr_el0, xzr          // each task's own from its save area
    isb

    mrs     x0, id_aa64mmfr0_el1    // the boot tables use the 4 KiB granule
    ubfx    x0, x0, #28, #4
    cmp     x0, #0xf
    b.ne    1f
    adr_l   x0, msg_no_4k
    bl      early_puts
    b       stop_forever
1:
    bl      build_boot_tables
    bl      enable_mmu
    ldr     x0, =running_high       // absolute, upper-half address
    br      x0

// Writes the boot tables with the MMU off (non-cacheable writes), with the
// stale-cache invalidation the architecture requires on either side.
build_boot_tables:
    mov     x18, x30
    adr_l   x0, __boot_data_start
    adr_l   x1, __boot_stack_bottom
    bl      dcache_inval_range      // no dirty line may be evicted over our writes
    adr_l   x0, __boot_data_start
    adr_l   x1, __boot_stack_bottom
1:  stp     xzr, xzr, [x0], #16
    cmp     x0, x1
    b.lo    1b

    // TTBR0: identity map of the 1 GiB region(s) holding the image, used only
    // for the instructions between turning the MMU on and the jump up.
    adr_l   x0, boot_l0_identity
    adr_l   x1, boot_l1_identity
    mov     x2, x21
    bl      map_identity_gib
    add     x2, x21, x22
    sub     x2, x2, #1
    bl      map_identity_gib

    // TTBR1: L0[256] -> L1, L1[0] -> L2, L2[0..8] -> kernel L3 tables,
    // L2[510..512] -> fixmap L3 tables (filled by Rust, see early_map.rs).
    adr_l   x0, boot_l0_kernel
    adr_l   x1, boot_l1_kernel
    orr     x2, x1, #DESC_TABLE
    str     x2, [x0, #(256 * 8)]
    adr_l   x0, boot_l2_kernel
    orr     x2, x0, #DESC_TABLE
    str     x2, [x1]
    adr_l   x1, boot_l3_kernel
    mov     x3, #BOOT_L3_TABLES
2:  orr     x2, x1, #DESC_TABLE
    str     x2, [x0], #8
    add     x1, x1, #4096
    subs    x3, x3, #1
    b.ne    2b
    adr_l   x0, boot_l2_kernel
    add     x0, x0, #(FIXMAP_L2_FIRST * 8)
    adr_l   x1, boot_l3_fixmap
    mov     x3, #FIXMAP_L3_TABLES
3:  orr     x2, x1, #DESC_TABLE
    str     x2, [x0], #8
    add     x1, x1, #4096
    subs    x3, x3, #1
    b.ne    3b

    // The image itself, page by page: VA KERNEL_VIRT_BASE + off -> x21 + off.
    adr_l   x0, boot_l3_kernel
    mov     x1, x21
    add     x3, x21, x22
    ldr     x4, =(NORMAL_RW_KERNEL | DESC_PAGE)
4:  orr     x2, x1, x4
    str     x2, [x0], #8
    add     x1, x1, #4096
    cmp     x1, x3
    b.lo    4b

    dmb     sy
    adr_l   x0, __boot_data_start
    adr_l   x1, __boot_stack_bottom
    bl      dcache_inval_range      // drop lines fetched before our writes
    mov     x30, x18
    ret

// x0 = L0 table, x1 = L1 table, x2 = physical address: identity-map the
// 1 GiB block holding x2 as normal memory. Clobbers x3-x5.
map_identity_gib:
    lsr     x3, x2, #39
    orr     x4, x1, #DESC_TABLE
    str     x4, [x0, x3, lsl #3]
    ubfx    x3, x2, #30, #9
    lsr     x4, x2, #30
    lsl     x4, x4, #30
    ldr     x5, =(NORMAL_RW_KERNEL | DESC_BLOCK)
    orr     x4, x4, x5
    str     x4, [x1, x3, lsl #3]
    ret

// x0 = start, x1 = end: invalidate data cache lines to the point of coherency.
dcache_inval_range:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4         // DminLine: log2(words)
    mov     x2, #4
    lsl     x2, x2, x3              // line size in bytes
    sub     x3, x2, #1
    bic     x0, x0, x3
1:  dc      ivac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    1b
    dsb     sy
    ret

enable_mmu:
    ldr     x0, =MAIR_VALUE
    msr     mair_el1, x0
    mrs     x1, id_aa64mmfr0_el1    // IPS = PARange, capped at 48 bits
    and     x1, x1, #0xf
    cmp     x1, #5
    mov     x2, #5
    csel    x1, x1, x2, ls
    ldr     x0, =TCR_BASE
    bfi     x0, x1, #32, #3
    msr     tcr_el1, x0
    adr_l   x0, boot_l0_identity
    msr     ttbr0_el1, x0
    adr_l   x0, boot_l0_kernel
    mmu_on_with_ttbr1_x0
    ret

// Now at the linked, upper-half address.
running_high:
    mrs     x0, tcr_el1             // the identity map is no longer needed
    orr     x0, x0, #TCR_EPD0
    msr     tcr_el1, x0
    msr     ttbr0_el1, xzr
    isb
    tlbi    vmalle1
    dsb     nsh
    isb

    adr_l   x0, __bss_start         // zero .bss with caches on
    adr_l   x1, __bss_end
1:  cmp     x0, x1
    b.hs    2f
    stp     xzr, xzr, [x0], #16
    b       1b
2:  adr_l   x0, __boot_stack_top
    mov     sp, x0
    adr_l   x0, exception_vectors
    msr     vbar_el1, x0
    isb
    mov     x0, x19                 // DTB physical address (as passed)
    mov     x1, x20                 // entry exception level
    mov     x2, x21                 // physical load address
    bl      kernel_start            // never returns
    b       stop_forever

// Switches TTBR1 to the tables the engine built (possibly with another
// granule). The change runs from the boot identity map (TTBR0, 4 KiB), so no
// instruction is fetched through TTBR1 while its granule and root change,
// and touches no memory (the stack is a TTBR1 address).
//   x0 = new TTBR1   x1 = TCR for the switch (new TG1, TTBR0 identity on)
//   x2 = TTBR0 (boot identity tables, physical)
//   x3 = physical address of switch_tables_identity
//   x4 = final TCR (new TG0/TG1, TTBR0 walks off until tasks exist)
.global switch_kernel_tables
switch_kernel_tables:
    mrs     x5, tcr_el1
    bic     x5, x5, #TCR_EPD0       // walks through the identity map again
    msr     tcr_el1, x5
    msr     ttbr0_el1, x2
    isb
    br      x3
.global switch_tables_identity
switch_tables_identity:
    msr     ttbr1_el1, x0
    msr     tcr_el1, x1
    isb
    tlbi    vmalle1                 // nothing of the boot tables may survive
    dsb     nsh
    isb
    ldr     x5, =switch_tables_back
    br      x5
switch_tables_back:                 // the linked address, through the new tables
    msr     tcr_el1, x4
    msr     ttbr0_el1, xzr
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ret

// Secondary cores start here, at this physical address, MMU off, at EL2 or
// EL1 (PSCI CPU_ON on virt, the spin-table release on the Pi). Each finds
// its SecondaryRecord (smp.rs) by MPIDR.Aff0 in `secondary_records`, which
// the boot core filled and cleaned to the point of coherency: the kernel's
// tables, TCR values, its stack. Cores with Aff1..Aff3 set, or without a
// valid record, park.
.equ RECORD_SIZE,       128
.equ MAX_SECONDARY,     16
.global secondary_entry
secondary_entry:
    mrs     x0, mpidr_el1
    lsr     x1, x0, #8
    and     x1, x1, #0xffff         // Aff1, Aff2
    cbnz    x1, park_secondary
    lsr     x1, x0, #32
    and     x1, x1, #0xff           // Aff3
    cbnz    x1, park_secondary
    and     x1, x0, #0xff
    cmp     x1, #MAX_SECONDARY
    b.hs    park_secondary
    adr_l   x19, secondary_records
    mov     x2, #RECORD_SIZE
    madd    x19, x1, x2, x19        // this core's record (physical)
    ldr     x2, [x19, #64]          // valid?
    cbz     x2, park_secondary
    mrs     x20, CurrentEL
    ubfx    x20, x20, #2, #2
    cmp     x20, #2
    b.ne    secondary_at_el1
    mov     x0, #(1 << 31)          // the same EL2 set-up as the boot core
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #3
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mov     x0, #0x33ff
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, id_aa64dfr0_el1
    ubfx    x0, x0, #8, #4
    cbz     x0, 1f
    mrs     x0, pmcr_el0
    ubfx    x0, x0, #11, #5
    msr     mdcr_el2, x0
1:  mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4
    cbz     x0, 2f
    mrs     x0, S3_4_C12_C9_5
    mov     x1, #0x9
    orr     x0, x0, x1
    msr     S3_4_C12_C9_5, x0
    isb
2:  ldr     x0, =SCTLR_EL1_RES1
    msr     sctlr_el1, x0
    mov     x0, #0x3c5
    msr     spsr_el2, x0
    adr_l   x0, secondary_at_el1
    msr     elr_el2, x0
    eret
secondary_at_el1:
    msr     daifset, #0xf
    ldr     x0, =SCTLR_EL1_RES1
    msr     sctlr_el1, x0
    mov     x0, #(1 << 20)          // as on the boot core
    msr     cpacr_el1, x0
    msr     tpidrro_el0, xzr
    msr     tpidr_el0, xzr
    isb
    ldr     x0, =MAIR_VALUE
    msr     mair_el1, x0
    ldr     x0, [x19, #24]          // TCR for the switch (identity on)
    msr     tcr_el1, x0
    ldr     x0, [x19, #40]          // TTBR0: the boot identity map
    msr     ttbr0_el1, x0
    ldr     x0, [x19, #16]          // TTBR1: the kernel's tables
    mmu_on_with_ttbr1_x0
    ldr     x1, [x19, #48]          // the record's kernel address
    ldr     x2, [x19, #32]          // final TCR
    ldr     x3, [x19, #8]           // stack top
    ldr     x0, =secondary_high
    br      x0
secondary_high:
    msr     tcr_el1, x2
    msr     ttbr0_el1, xzr
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mov     sp, x3
    adr_l   x0, exception_vectors
    msr     vbar_el1, x0
    isb
    mov     x0, x1
    bl      secondary_main
park_secondary:
    wfe
    b       park_secondary

// Before the MMU is on there is no Rust and no DTB: pick the UART by where
// the image was loaded (below 1 GiB: Raspberry Pi 4; above: QEMU virt).
// x0 = NUL-terminated string. Clobbers x0-x3.
early_puts:
    mov     x1, #0x40000000
    cmp     x21, x1
    b.hs    1f
    ldr     x1, =0xFE201000         // BCM2711 PL011
    b       2f
1:  ldr     x1, =0x09000000         // virt PL011
2:  ldrb    w2, [x0], #1
    cbz     w2, 4f
3:  ldr     w3, [x1, #0x18]         // UARTFR
    tbnz    w3, #5, 3b              // TXFF
    str     w2, [x1]
    b       2b
4:  ret

stop_forever:
    wfe
    b       stop_forever

.section .rodata
msg_el3:
    .asciz "result boot fail entry_el=3 why=\"folio runs at EL2 or EL1 only, stopping\"\r\n"
msg_no_4k:
    .asciz "result boot fail why=\"this CPU has no 4 KiB granule for the boot tables, stopping\"\r\n"

.section .boot_tables, "aw", @nobits
.balign 4096
.global boot_l0_identity, boot_l1_identity, boot_l0_kernel, boot_l1_kernel
.global boot_l2_kernel, boot_l3_kernel, boot_l3_fixmap
boot_l0_identity:   .space 4096
boot_l1_identity:   .space 4096
boot_l0_kernel:     .space 4096
boot_l1_kernel:     .space 4096
boot_l2_kernel:     .space 4096
boot_l3_kernel:     .space 4096 * BOOT_L3_TABLES
boot_l3_fixmap:     .space 4096 * FIXMAP_L3_TABLES
