# Puts `membench`'s 4K figures (ALLOC of a zeroed optimized folio, FREE;
# means of four rounds, instructions as the caller sees them) beside
# Linux 6.1 arm64 hugetlb's for the same sizes: a process with a
# preallocated pool doing mmap(MAP_HUGETLB | MAP_HUGE_<size> |
# MAP_POPULATE) then munmap, in the same QEMU (virt, cortex-a72, icount),
# mean instructions. Linux's figures are issue 17's measurements, not
# rerun here; the goals are issue 17's.
#
#     awk -f tools/beside-linux.awk OUTPUT-OF-THE-4K-BENCH-BOOT

BEGIN {
    linux_alloc["64"] = 24495;      linux_free["64"] = 15597
    linux_alloc["2048"] = 174390;   linux_free["2048"] = 14938
    linux_alloc["32768"] = 2526910; linux_free["32768"] = 15402
    linux_alloc["1048576"] = 80059012; linux_free["1048576"] = 14348
    alloc_goal["2048"] = 3000; alloc_goal["1048576"] = 5000
    free_goal = 3000
}

# membench: 2048 KiB: alloc 3776 (optimized), alloc 26016 (plain), free 2781, ...
/^membench: [0-9]+ KiB: alloc [0-9]+ \(optimized\)/ {
    kib = $2
    alloc = $5
    for (i = 1; i <= NF; i++) if ($i == "free") { free = $(i + 1); sub(/,$/, "", free) }
    if (!(kib in linux_alloc) || (kib in folio_alloc)) next
    rows[++n] = kib
    folio_alloc[kib] = alloc
    folio_free[kib] = free
}

function goal(value, bound) {
    if (bound == "") return "-"
    return (value + 0 < bound ? "met" : "not met") " (< " bound ")"
}

END {
    if (n == 0) {
        print "beside-linux: no membench figures for Linux's sizes in the input"
        exit 1
    }
    print "== issue 17: folio (4K, this run) beside Linux 6.1 arm64 hugetlb (issue 17's figures, same QEMU)"
    printf "%-9s %12s %12s %-16s %10s %10s %s\n", "size", "folio ALLOC", "Linux alloc", "ALLOC goal", "folio FREE", "Linux free", "FREE goal"
    for (i = 1; i <= n; i++) {
        k = rows[i]
        size = (k >= 1048576) ? (k / 1048576 " GiB") : (k >= 1024 ? k / 1024 " MiB" : k " KiB")
        printf "%-9s %12d %12d %-16s %10d %10d %s\n", size, folio_alloc[k], linux_alloc[k], goal(folio_alloc[k], alloc_goal[k]), folio_free[k], linux_free[k], goal(folio_free[k], free_goal)
    }
}
