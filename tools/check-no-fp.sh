#!/usr/bin/env bash
# Proves the kernel is soft-float: no instruction in its disassembly names an
# FP/SIMD register (b/h/s/d/q/v0-31, FPCR, FPSR) except in the two routines
# that save and restore a task's FP/SIMD state (arch/aarch64/fpsimd.s). A task's
# FP/SIMD values stay in the registers while the kernel runs (they are saved
# lazily), so any such use would corrupt them or leak them to another task.
#   tools/check-no-fp.sh KERNEL_ELF
set -euo pipefail
elf=${1:?usage: check-no-fp.sh KERNEL_ELF}
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
objdump="$sysroot/lib/rustlib/$host/bin/llvm-objdump"
allowed='^(fpsimd_save|fpsimd_restore)$'

"$objdump" -d --no-show-raw-insn --no-leading-addr "$elf" | awk -v allowed="$allowed" '
    # A symbol heading: "<name>:"
    /^<.*>:$/ { fn = substr($0, 2, length($0) - 3); next }
    NF == 0 { next }
    /\t\.(word|hword|byte|short|long|quad)\t/ { next }   # data in code
    {
        line = $0
        sub(/\/\/.*/, "", line)          # comments
        sub(/<[^>]*>/, "", line)         # symbolised targets
        n = split(line, f, /[ \t,\[\]{}!]+/)
        for (i = 2; i <= n; i++) {
            op = tolower(f[i])
            if (op ~ /^[bhsdqv]([0-9]|[12][0-9]|3[01])(\.[0-9]*[bhsdq])?$/ || op == "fpcr" || op == "fpsr") {
                if (fn !~ allowed) { print fn ": " $0; bad++ }
                else ok++
                break
            }
        }
    }
    END {
        if (bad) { printf "check-no-fp: %d FP/SIMD instructions outside the save/restore code\n", bad; exit 1 }
        if (!ok) { print "check-no-fp: the save/restore code was not found (is this the kernel?)"; exit 1 }
        printf "check-no-fp: pass (%d FP/SIMD instructions, all in fpsimd_save/fpsimd_restore)\n", ok
    }'
