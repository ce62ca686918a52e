//! QEMU integration tests: boot the kernel image on each board and
//! configuration, and judge what it printed and how QEMU exited.
//!
//! The image comes from `make image` (`make test` builds it first); set
//! `FOLIO_IMAGE` to test another one. Every boot has a timeout, and a boot
//! that is expected to stop without exiting (EL3) is ended as soon as the
//! expected line appears: nothing waits on a wall-clock sleep.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const RPI4_DTB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/bcm2711-rpi-4-b.dtb");

/// Exit statuses the kernel uses (src/kernel.rs, src/arch/aarch64/exception.rs).
const EXIT_OK: i32 = 0;
const EXIT_PANIC: i32 = 2;
const EXIT_FAULT: i32 = 3;

fn image() -> PathBuf {
    let path = std::env::var_os("FOLIO_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/folio.img"));
    assert!(path.exists(), "no kernel image at {}: run `make test`, which builds it first", path.display());
    path
}

struct Boot {
    output: String,
    /// QEMU's exit status; `None` when the harness ended it.
    status: Option<i32>,
    /// QEMU's peak resident memory (VmHWM), sampled as each line arrives.
    peak_rss_kib: u64,
}

/// VmHWM of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Boot {
    fn assert_has(&self, needle: &str) -> &Self {
        assert!(self.output.contains(needle), "expected `{needle}` in the console output:\n{}", self.output);
        self
    }

    fn assert_status(&self, status: i32) -> &Self {
        assert_eq!(self.status, Some(status), "QEMU exit status; console output:\n{}", self.output);
        self
    }

    /// The memory service ran with both test clients: every check passed,
    /// each client's folio left behind was reclaimed when it died, and the
    /// pool was whole again at the end.
    fn assert_memory_service(&self) -> &Self {
        // Only the run after the kernel tests (one of those starts a service
        // that fails on purpose).
        let run = self.output.split("memsvc: kernel grants the service").nth(1).unwrap_or("");
        assert!(!run.is_empty() && !run.contains(": FAIL "), "a client check failed:\n{}", self.output);
        for client in [1, 2] {
            let report = format!("memclient {client}: report: ");
            let line = run.lines().find(|l| l.starts_with(&report));
            let line = line.unwrap_or_else(|| panic!("no `{report}` line in the console output:\n{}", self.output));
            assert!(line.ends_with(" passed, 0 failed"), "{line}\n{}", self.output);
            let passed: u32 = line[report.len()..].split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            assert!(passed >= 30, "only {passed} checks ran: {line}");
        }
        self.assert_has("memsvc: client 0x1 is gone; 1 folios back in the pool")
            .assert_has("memsvc: client 0x2 is gone; 1 folios back in the pool")
            .assert_has("memclient 1: pass isolation ")
            .assert_has("memclient 2: pass isolation-data 2 of 2 folios untouched")
            .assert_has(
                "memsvc: tasks ended [(\"memsvc\", Some(0)), (\"memclient-1\", Some(0)), (\"memclient-2\", Some(0))]",
            );
        let summary = self.output.lines().find(|l| l.starts_with("memsvc: ") && l.contains(" requests, "));
        let summary = summary.unwrap_or_else(|| panic!("no service summary:\n{}", self.output));
        let pool = summary.split("; pool ").nth(1).unwrap_or("");
        let words: Vec<&str> = pool.split(' ').collect();
        assert!(words.len() > 3 && words[0] == words[2], "the pool is not whole again: {summary}");
        self
    }

    /// The EL0 task test: IPC with badges between address spaces, hostile
    /// requests answered with errors, a fault stopping only its task.
    fn assert_tasks_ran(&self) -> &Self {
        self.assert_has("ping: 10 calls, 0 wrong replies, the server saw badge 1")
            .assert_has("ping: 10 calls, 0 wrong replies, the server saw badge 2")
            .assert_has("ping: 10 calls, 0 wrong replies, the server saw badge 3")
            .assert_has("ping: 10 calls, 0 wrong replies, the server saw badge 4")
            .assert_has("pong: served 40 calls")
            .assert_has("hostile: no handle 1, kernel pointer 14, unmapped 14, too long 22, unknown call 38")
            .assert_has("task hostile faulted and was stopped: synchronous exception from lower EL (AArch64) at EL0")
            .assert_has("class: data abort from a lower EL (EC 0x24)")
            .assert_has("FAR 0x0000000000000010")
            .assert_has("hello from EL0")
            .assert_has("ktest tasks_run_talk_and_fail_alone ... ok")
            // The spinner never makes a system call: hello ends first only
            // because the virtual timer's interrupt preempted it.
            .assert_has("ktest   tasks ended in this order: [\"hello\", \"spinner\"]")
            .assert_has("ktest tasks_are_preempted_by_the_timer ... ok")
            .assert_has("ktest tasks_calling_a_dead_server_get_an_error ... ok")
            .assert_has("watcher: poll status 6, timed receive status 5, death notification 0b1000 (status 0)")
    }

    /// The in-kernel tests ran, at least one, and none failed.
    fn assert_ktests_pass(&self) -> &Self {
        // The kernel tests' line is bare; the memory clients' lines name them.
        let line = self.output.lines().find(|l| l.ends_with(" failed") && l.contains(" passed, ") && !l.contains(':'));
        let line = line.unwrap_or_else(|| panic!("no `N passed, N failed` line:\n{}", self.output));
        let (passed, failed) = line.split_once(" passed, ").unwrap();
        assert!(passed.trim().parse::<u32>().unwrap() > 0, "no in-kernel test ran:\n{}", self.output);
        assert_eq!(failed, "0 failed", "in-kernel tests failed:\n{}", self.output);
        self
    }
}

fn qemu(qemu_args: &[&str]) -> Command {
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-semihosting",
        "-nic",
        "none",
    ]);
    cmd.args(qemu_args);
    cmd
}

/// Boots the image as a kernel (`-kernel`, so QEMU passes the DTB) with the
/// command line `bootargs`.
fn boot(qemu_args: &[&str], bootargs: &str) -> Boot {
    let mut cmd = qemu(qemu_args);
    cmd.arg("-kernel").arg(image()).args(["-append", bootargs]);
    run(cmd, None)
}

/// Runs QEMU; with `stop_at`, ends it as soon as a line contains that text.
fn run(mut cmd: Command, stop_at: Option<&str>) -> Boot {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-aarch64 runs (make test installs it)");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut output = String::new();
    let mut peak = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
                let line = line.trim_end_matches('\r');
                output.push_str(line);
                output.push('\n');
                if stop_at.is_some_and(|s| line.contains(s)) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Boot { output, status: None, peak_rss_kib: peak };
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("QEMU did not finish within {BOOT_TIMEOUT:?}; output so far:\n{output}");
            }
        }
    }
    let status = child.wait().expect("wait for QEMU").code();
    Boot { output, status, peak_rss_kib: peak }
}

const VIRT_A72: &[&str] = &["-M", "virt", "-cpu", "cortex-a72", "-m", "1G"];

#[test]
fn virt_at_el1_boots_and_passes_the_kernel_tests() {
    boot(VIRT_A72, "exit=semihosting ktest")
        .assert_status(EXIT_OK)
        .assert_has("on QEMU virt")
        .assert_has("entered at EL1\n")
        .assert_has("PSCI: conduit hvc")
        .assert_has("memory map (1 banks, 1 GiB RAM)")
        .assert_has("bank     [0x040000000-0x080000000) 1 GiB /memory@40000000")
        .assert_has("reserved [0x040080000-")
        .assert_has("frame allocator: 4K frames")
        .assert_has("MMU: kernel on its own 4K tables")
        .assert_has("linear map: 1 x L1 block\n")
        .assert_has("ktest   L2 block (2 MiB) at ")
        .assert_has("ktest   contiguous L2 block run (32 MiB) at ")
        .assert_has("ktest   contiguous L3 page run (64 KiB) at ")
        .assert_has("ktest   L3 page (4 KiB) at ")
        .assert_has("ktest every_unit_maps_splits_and_coalesces ... ok")
        .assert_has("HVO savings, 4K granule")
        .assert_has("not eligible (order 4 < 7)")
        .assert_has("ktest   order 9 (L2 block): optimized, every tail found its head, restored, freed")
        .assert_has("ktest   order 13 (contiguous L2 block run): optimized, every tail found its head, restored, freed")
        .assert_has("ktest   caught: HVO violation: write to a shared read-only tail descriptor of the order-7 folio")
        .assert_has("ktest   64 folios of order 7: optimize and restore, 3 DSBs each")
        .assert_has("ktest   demote 32 MiB -> 2 MiB: 16 pieces, still optimized, every tail found its head")
        .assert_has("ktest   demote 32 MiB -> 64 KiB: 512 pieces (not eligible: restored first)")
        .assert_tasks_ran()
        .assert_has("memsvc: cannot start: no capabilities: not started as the memory service")
        .assert_has("memclient 1: FAIL sizes status 1004, mask 0x0")
        .assert_has("ktest memsvc_that_cannot_start_fails_its_callers ... ok")
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn demote_1g_into_2m_on_4k() {
    boot(&["-M", "virt", "-cpu", "cortex-a72", "-m", "2G"], "exit=semihosting ktest=demote")
        .assert_status(EXIT_OK)
        .assert_has(
            "ktest   demote 1 GiB -> 2 MiB: 512 pieces, still optimized, every tail found its head, restored and freed",
        )
        .assert_ktests_pass();
}

const VIRT_64G: &[&str] = &[
    "-M",
    "virt,memory-backend=ram0",
    "-cpu",
    "cortex-a72",
    "-m",
    "64G",
    "-object",
    "memory-backend-ram,id=ram0,size=64G,reserve=off",
];

#[test]
fn sixty_1g_pages_are_born_optimized_in_a_64g_guest() {
    let run = boot(VIRT_64G, "exit=semihosting hugepages=1G:60 ktest=pool memsvc=1G");
    run.assert_status(EXIT_OK)
        .assert_has("memory map (1 banks, 64 GiB RAM)")
        .assert_has("hugepages: 60 x 1 GiB reserved at boot, born optimized")
        .assert_has("hugepages: their vmemmap costs 60 private pages + 1 shared tail page(s) + ")
        .assert_has("hugepages: a plain vmemmap would take 245760 pages (960 MiB); 245700 of them were never allocated")
        .assert_has("ktest   60 pool folios: optimized from birth, every tail found its head")
        .assert_ktests_pass();
    // A handful of page-table frames, not one per 2 MiB of vmemmap (480).
    let tables: u64 = run
        .output
        .lines()
        .find_map(|l| l.split("shared tail page(s) + ").nth(1)?.split(' ').next()?.parse().ok())
        .expect("table frame count");
    assert!(tables < 100, "{tables} page-table frames");
    // Nothing touched the huge pages' memory: far below the guest's 64 GiB.
    assert!(run.peak_rss_kib > 0 && run.peak_rss_kib < 1 << 20, "QEMU peak RSS {} KiB", run.peak_rss_kib);
}

#[test]
fn bad_hugepages_requests_are_reported_and_skipped() {
    boot(VIRT_A72, "exit=semihosting hugepages=3M:2,2M:4,junk,1G:9 ktest=pool")
        .assert_status(EXIT_OK)
        .assert_has("boot argument `hugepages=junk` ignored: expected SIZE:COUNT")
        .assert_has(
            "hugepages: 3 MiB is not a huge-page size of the 4K granule (64 KiB, 2 MiB, 32 MiB, 1 GiB); skipped",
        )
        .assert_has("hugepages: only 0 of 9 x 1 GiB fit in free memory")
        .assert_has("hugepages: 4 x 2 MiB reserved at boot, born optimized")
        .assert_has("ktest   4 pool folios: optimized from birth")
        .assert_ktests_pass();
}

/// The savings table of hvo-facts.md, row by row, for the running granule.
fn assert_savings_rows(boot: &Boot, rows: &[(&str, &str)]) {
    for (size, rest) in rows {
        let line = boot.output.lines().find(|l| l.trim_start().starts_with(size) && l.contains(rest));
        assert!(line.is_some(), "no savings row `{size} ... {rest}`:\n{}", boot.output);
    }
}

#[test]
fn virt_with_2g_maps_a_1g_block_with_4k() {
    let run = boot(&["-M", "virt", "-cpu", "cortex-a72", "-m", "2G"], "exit=semihosting ktest=unit");
    run.assert_status(EXIT_OK)
        .assert_has("linear map: 2 x L1 block\n")
        .assert_has("ktest   L1 block (1 GiB) at 0x80000000: mapped, written, split, coalesced, protected")
        .assert_ktests_pass();
    // Every row of the 4K savings table, each measured on a real folio.
    assert_savings_rows(
        &run,
        &[
            ("64 KiB", "1/4      -      -  not eligible"),
            ("2 MiB", "512         8      1      7  28 KiB"),
            ("32 MiB", "8192       128      1    127  508 KiB"),
            ("1 GiB", "262144      4096      1   4095  16380 KiB"),
        ],
    );
}

#[test]
fn virt_entered_at_el2_drops_to_el1() {
    boot(&["-M", "virt,virtualization=on", "-cpu", "cortex-a72", "-m", "1G"], "exit=semihosting ktest")
        .assert_status(EXIT_OK)
        .assert_has("entered at EL2, dropped to EL1")
        .assert_has("PSCI: conduit smc")
        .assert_tasks_ran()
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_gicv3() {
    boot(&["-M", "virt,gic-version=3", "-cpu", "cortex-a72", "-m", "1G"], "exit=semihosting ktest")
        .assert_status(EXIT_OK)
        .assert_has("GIC: v3, distributor 0x8000000, redistributors [0x0080a0000-")
        .assert_tasks_ran()
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_two_numa_nodes_sees_two_banks() {
    let args = [
        "-M",
        "virt",
        "-cpu",
        "cortex-a72",
        "-smp",
        "2",
        "-m",
        "1536M",
        "-object",
        "memory-backend-ram,id=m0,size=512M",
        "-object",
        "memory-backend-ram,id=m1,size=1G",
        "-numa",
        "node,memdev=m0,cpus=0",
        "-numa",
        "node,memdev=m1,cpus=1",
    ];
    boot(&args, "exit=semihosting ktest")
        .assert_status(EXIT_OK)
        .assert_has("memory map (2 banks, 1536 MiB RAM)")
        .assert_has("bank     [0x040000000-0x060000000) 512 MiB /memory@40000000")
        .assert_has("bank     [0x060000000-0x0a0000000) 1 GiB /memory@60000000")
        .assert_has("CPUs: 2 [0x0:psci, 0x1:psci]")
        .assert_has(" (zone 1)")
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_3g_and_cpu_max() {
    boot(&["-M", "virt", "-cpu", "max", "-m", "3G"], "exit=semihosting ktest granule=16k")
        .assert_status(EXIT_OK)
        .assert_has("bank     [0x040000000-0x100000000) 3 GiB")
        .assert_has("frame allocator: 16K frames")
        .assert_has("MMU: kernel on its own 16K tables")
        .assert_has("ktest   contiguous L2 block run (1 GiB) at ")
        .assert_has("ktest   L2 block (32 MiB) at ")
        .assert_has("ktest   contiguous L3 page run (2 MiB) at ")
        .assert_has("ktest   L3 page (16 KiB) at ")
        .assert_has("ktest   order 16 (contiguous L2 block run): optimized, every tail found its head, restored, freed")
        .assert_has("ktest   demote 1 GiB -> 32 MiB: 32 pieces, still optimized")
        .assert_has("PAN: on (EL1 cannot touch task memory)")
        .assert_has("ktest   kernel read of a task page: faulted (PAN on)")
        .assert_has("ktest   caught: HVO violation")
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_64k_frames() {
    boot(VIRT_A72, "exit=semihosting ktest granule=64k")
        .assert_status(EXIT_OK)
        .assert_has("frame allocator: 64K frames")
        .assert_has("MMU: kernel on its own 64K tables")
        .assert_has(
            "ktest   contiguous L2 block run (16 GiB): no free aligned block in this much RAM (try a larger MEM=)",
        )
        .assert_has("ktest   L3 page (64 KiB) at ")
        .assert_tasks_ran()
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_32g_maps_a_16g_contiguous_run_with_64k() {
    // Only what the guest touches becomes resident (reserve=off).
    let args = [
        "-M",
        "virt,memory-backend=ram0",
        "-cpu",
        "cortex-a72",
        "-m",
        "32G",
        "-object",
        "memory-backend-ram,id=ram0,size=32G,reserve=off",
    ];
    boot(&args, "exit=semihosting ktest=unit granule=64k memsvc=1G")
        .assert_status(EXIT_OK)
        .assert_has("linear map: 32 x L2 block, 1 x contiguous L2 block run\n")
        .assert_has(
            "ktest   contiguous L2 block run (16 GiB) at 0x400000000: mapped, written, split, coalesced, protected",
        )
        .assert_has("ktest   L2 block (512 MiB) at ")
        .assert_ktests_pass();
}

#[test]
fn hvo_savings_rows_for_16k_and_64k() {
    let run = boot(&["-M", "virt", "-cpu", "max", "-m", "3G"], "exit=semihosting granule=16k");
    run.assert_status(EXIT_OK);
    assert_savings_rows(
        &run,
        &[
            ("2 MiB", "128       1/2      -      -  not eligible"),
            ("32 MiB", "2048         8      1      7  112 KiB"),
            ("1 GiB", "65536       256      1    255  4080 KiB"),
        ],
    );
    let run = boot(&["-M", "virt", "-cpu", "cortex-a72", "-m", "2G"], "exit=semihosting granule=64k");
    // The memory service's quota (half the pool) holds a 512 MiB page here.
    run.assert_status(EXIT_OK)
        .assert_memory_service()
        .assert_has("pass demote 512M -> 256 x 2M: status 0")
        .assert_has("pass stats zone 0 size 512M: in use ");
    assert_savings_rows(
        &run,
        &[
            ("2 MiB", "32      1/32      -      -  not eligible"),
            ("512 MiB", "8192         8      1      7  448 KiB"),
            ("16 GiB", "does not fit in this machine's free memory (needs about MEM=31G)"),
        ],
    );
}

#[test]
fn hvo_16g_folio_on_64k_in_a_64g_guest() {
    let run = boot(VIRT_64G, "exit=semihosting granule=64k ktest=hvo memsvc=1G");
    run.assert_status(EXIT_OK)
        .assert_has("ktest   order 18 (contiguous L2 block run): optimized, every tail found its head, restored, freed")
        .assert_has("ktest   demote 16 GiB -> 512 MiB: 32 pieces, still optimized, every tail found its head, restored and freed")
        .assert_has("ktest   demote 16 GiB -> 2 MiB: 8192 pieces (not eligible: restored first)")
        .assert_ktests_pass();
    assert_savings_rows(&run, &[("16 GiB", "262144       256      1    255  16320 KiB")]);
}

#[test]
fn bad_boot_arguments_are_reported_and_ignored() {
    boot(VIRT_A72, "exit=semihosting granule=16k bogus=1 granule=9k loglevel=loud ktest")
        .assert_status(EXIT_OK)
        .assert_has("unknown boot argument `bogus=1` ignored")
        .assert_has("boot argument `granule=9k` ignored: expected 4k, 16k or 64k")
        .assert_has("boot argument `loglevel=loud` ignored")
        .assert_has("granule 16K is not supported by this CPU (ID_AA64MMFR0_EL1 = 0x1124); using 4K")
        .assert_has("frame allocator: 4K frames")
        .assert_ktests_pass();
}

#[test]
fn an_unexpected_fault_is_reported_and_fails_the_run() {
    boot(VIRT_A72, "exit=semihosting crash=fault memsvc=off")
        .assert_status(EXIT_FAULT)
        .assert_has("*** folio: unexpected exception")
        .assert_has("synchronous exception from current EL with SP_ELx at EL1")
        .assert_has("class: data abort from the same EL (EC 0x25)")
        .assert_has("fault: translation fault at level 0 on a read")
        .assert_has("FAR 0xffff7fffdead0000");
}

#[test]
fn a_panic_is_reported_and_fails_the_run() {
    boot(VIRT_A72, "exit=semihosting crash=panic memsvc=off")
        .assert_status(EXIT_PANIC)
        .assert_has("*** folio: kernel panic at crates/kernel/src/kernel.rs:")
        .assert_has("crash=panic asked for a panic");
}

#[test]
fn rpi4_with_the_real_dtb() {
    boot(&["-M", "raspi4b", "-dtb", RPI4_DTB], "exit=semihosting ktest")
        .assert_status(EXIT_OK)
        .assert_has("on Raspberry Pi 4: Raspberry Pi 4 Model B")
        .assert_has("entered at EL2, dropped to EL1")
        .assert_has("memory map (1 banks, 960 MiB RAM)")
        .assert_has("bank     [0x000000000-0x03c000000) 960 MiB /memory@0")
        .assert_has("reserved [0x000000000-0x000001000) 4 KiB /memreserve/")
        .assert_has("console: PL011 at 0xfe201000")
        .assert_has("GIC: v2, distributor 0xff841000, CPU interface 0xff842000")
        .assert_has("CPUs: 4 [0x0:spin-table@0xd8, 0x1:spin-table@0xe0, 0x2:spin-table@0xe8, 0x3:spin-table@0xf0]")
        .assert_has("PSCI: none")
        .assert_has("core 3 up: MPIDR 0x80000003, EL1, MMU on with the kernel's tables")
        .assert_has("cores: 4 of 4 online")
        .assert_has("ktest tasks_talk_across_cores ... ok")
        .assert_has("ktest tasks_are_preempted_on_a_secondary_core ... ok")
        .assert_has("ktest   3 reader(s) x 5000000 rounds: ")
        .assert_has("ktest tasks_survive_remapping_under_them ... ok")
        .assert_has("ktest tasks_are_rescheduled_by_an_ipi ... ok")
        .assert_has("MMU: kernel on its own 4K tables")
        .assert_has("ktest   L1 block (1 GiB): no free aligned block in this much RAM (try a larger MEM=)")
        .assert_has("ktest   contiguous L2 block run (32 MiB) at ")
        .assert_has("ktest   order 13 (contiguous L2 block run): optimized, every tail found its head, restored, freed")
        .assert_has("ktest   caught: HVO violation")
        .assert_tasks_ran()
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn rpi4_with_64k_frames() {
    boot(&["-M", "raspi4b", "-dtb", RPI4_DTB], "exit=semihosting ktest granule=64k")
        .assert_status(EXIT_OK)
        .assert_has("frame allocator: 64K frames")
        .assert_has("MMU: kernel on its own 64K tables")
        .assert_has("ktest   contiguous L3 page run (2 MiB) at ")
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn rpi4_without_a_dtb_falls_back_to_defaults() {
    boot(&["-M", "raspi4b"], "exit=semihosting ktest")
        .assert_status(EXIT_OK)
        .assert_has("no valid DTB at 0x100: bad magic")
        .assert_has("using the Raspberry Pi 4 defaults (platform/rpi4), memory and command line from ATAGS")
        .assert_has("bank     [0x000000000-0x03c000000) 960 MiB ATAG_MEM")
        .assert_ktests_pass();
}

#[test]
fn entered_at_el3_says_so_and_stops() {
    // The generic loader starts the CPU at its reset EL: EL3 on raspi4b.
    let message = "folio: entered at EL3; folio runs at EL2 or EL1 only, stopping.";
    let mut cmd = qemu(&["-M", "raspi4b"]);
    let raw = format!("loader,file={},addr=0x80000,force-raw=on", image().display());
    cmd.args(["-device", &raw, "-device", "loader,addr=0x80000,cpu-num=0"]);
    let run = run(cmd, Some(message));
    run.assert_has(message);
    assert_eq!(run.status, None, "the kernel must stop, not exit");
}

#[test]
fn four_cores_come_up_with_psci_on_virt() {
    for machine in ["virt", "virt,gic-version=3,virtualization=on"] {
        let run = boot(&["-M", machine, "-cpu", "cortex-a72", "-m", "1G", "-smp", "4"], "exit=semihosting ktest=tasks");
        run.assert_status(EXIT_OK);
        for core in 1..4 {
            run.assert_has(&format!("core {core} up: MPIDR 0x8000000{core}, EL1, MMU on with the kernel's tables"));
        }
        run.assert_has("cores: 4 of 4 online")
            .assert_has("ktest   ran on cores (bit per core): pong on 0b1, ping-a on 0b10, ping-b on 0b100, ping-c on 0b1000, ping-d on 0b10")
            .assert_has("ktest tasks_talk_across_cores ... ok")
            .assert_has("ktest   on core 3: tasks ended in this order: [\"hello\", \"spinner\"]")
            .assert_has("ktest tasks_are_preempted_on_a_secondary_core ... ok")
            .assert_has("ktest   3 reader(s) x 5000000 rounds: ")
            .assert_has("ktest tasks_survive_remapping_under_them ... ok")
            .assert_has("ktest tasks_are_rescheduled_by_an_ipi ... ok")
            .assert_has("ktest tasks_recycle_asids_across_generations ... ok")
            .assert_has("ktest tasks_keep_their_fp_simd_registers ... ok")
            .assert_tasks_ran()
            .assert_ktests_pass()
            .assert_memory_service();
    }
}

/// The SMP tests on the 16K and 64K granules (four cores, GICv2 and v3).
#[test]
fn four_cores_with_16k_and_64k_granules() {
    for (machine, cpu, granule) in [("virt,gic-version=3", "max", "16k"), ("virt", "cortex-a72", "64k")] {
        let run = boot(
            &["-M", machine, "-cpu", cpu, "-m", "1G", "-smp", "4"],
            &format!("exit=semihosting ktest=tasks granule={granule} memsvc=off"),
        );
        run.assert_status(EXIT_OK)
            .assert_has(&format!("MMU: kernel on its own {} tables", granule.to_uppercase()))
            .assert_has("cores: 4 of 4 online")
            .assert_has("ktest tasks_talk_across_cores ... ok")
            .assert_has("ktest   3 reader(s) x 5000000 rounds: ")
            .assert_has("ktest tasks_survive_remapping_under_them ... ok")
            .assert_has("ktest tasks_are_rescheduled_by_an_ipi ... ok")
            .assert_has("ktest tasks_recycle_asids_across_generations ... ok")
            .assert_ktests_pass();
    }
}

/// The real Pi 4 DTB with two secondaries broken: core 2's release
/// address moved to where nothing waits (it is released but never comes
/// up), core 3's enable-method renamed (it cannot be started). Both are
/// reported; the system goes on with cores 0 and 1 and runs tasks on them.
#[test]
fn cores_that_do_not_come_up_are_reported_and_left_out() {
    let mut dtb = std::fs::read(RPI4_DTB).expect("the Pi 4 DTB fixture");
    let replace = |dtb: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        let at = dtb.windows(from.len()).rposition(|w| w == from).expect("the pattern is in the DTB");
        dtb[at..at + from.len()].copy_from_slice(to);
    };
    replace(&mut dtb, &[0, 0, 0, 0, 0, 0, 0, 0xe8], &[0, 0, 0, 0, 0, 0, 0, 0xf8]);
    replace(&mut dtb, b"spin-table\0", b"spin-tabl3\0");
    let path = std::env::temp_dir().join(format!("folio-rpi4-broken-cpus-{}.dtb", std::process::id()));
    std::fs::write(&path, &dtb).expect("write the patched DTB");
    let path_text = path.display().to_string();
    let run = boot(&["-M", "raspi4b", "-dtb", &path_text], "exit=semihosting ktest=across memsvc=off");
    let _ = std::fs::remove_file(&path);
    run.assert_status(EXIT_OK)
        .assert_has("core 1 up: MPIDR 0x80000001")
        .assert_has("core 2: did not come up; going on without it")
        .assert_has("core 3: not started: no way to start it")
        .assert_has("cores: 2 of 4 online")
        .assert_has("ktest tasks_talk_across_cores ... ok")
        .assert_ktests_pass();
}

#[test]
fn rpi4_without_a_dtb_starts_its_cores_from_the_default_spin_table() {
    boot(&["-M", "raspi4b"], "exit=semihosting")
        .assert_status(EXIT_OK)
        .assert_has("core 1 up: MPIDR 0x80000001")
        .assert_has("cores: 4 of 4 online");
}
