//! QEMU integration tests: boot the kernel image on each board and
//! configuration, and judge its structured result lines (`result NAME
//! pass|fail KEY=VALUE...`, see `folio_abi::report`) and how QEMU exited;
//! prose on the console is for people and no test reads it.
//!
//! The image comes from `make image` (`make test` builds it first); set
//! `FOLIO_IMAGE` to test another one. Every boot has a timeout, and a boot
//! that is expected to stop without exiting (EL3) is ended as soon as the
//! expected line appears: nothing waits on a wall-clock sleep.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Line, image, parse_line};

/// One boot's limit. The slowest (raspi4b, four cores under TCG, every
/// kernel test) takes about 150 s alone, most of it the memory service's
/// protocol fuzzer: its 20,000 round trips cost milliseconds each between
/// four emulated cores on a 2-core host. Two tests run at once on a 2-core
/// machine, and other QEMUs may share it, so the limit leaves room.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const RPI4_DTB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/bcm2711-rpi-4-b.dtb");

/// Exit statuses the kernel uses (kernel.rs, arch/aarch64/exception.rs).
const EXIT_OK: i32 = 0;
const EXIT_PANIC: i32 = 2;
const EXIT_FAULT: i32 = 3;
const EXIT_NO_MACHINE: i32 = 4;
const EXIT_NO_CONSOLE: i32 = 5;

struct Boot {
    output: String,
    /// QEMU's exit status; `None` when the harness ended it.
    status: Option<i32>,
    /// QEMU's peak resident memory (VmHWM), sampled as each line arrives.
    peak_rss_kib: u64,
}

impl Boot {
    fn results(&self) -> Vec<Line> {
        self.output.lines().filter_map(parse_line).collect()
    }

    /// The result lines after the first one named `name` (all of them when
    /// there is none).
    fn results_since(&self, name: &str) -> Vec<Line> {
        let all = self.results();
        let at = all.iter().position(|l| l.name == name).unwrap_or(0);
        all[at..].to_vec()
    }

    fn find(&self, lines: &[Line], name: &str, pass: bool, expected: &[(&str, &str)]) -> Line {
        let found = lines.iter().find(|l| l.name == name && l.pass == pass && l.matches(expected));
        found.cloned().unwrap_or_else(|| {
            let verdict = if pass { "pass" } else { "fail" };
            let same: Vec<String> = lines.iter().filter(|l| l.name == name).map(|l| format!("  {l:?}")).collect();
            panic!(
                "no `result {name} {verdict}` line with {expected:?}; lines named {name}:\n{}\nconsole output:\n{}",
                same.join("\n"),
                self.output
            )
        })
    }

    /// A passing result line `name` with these fields exists.
    fn expect(&self, name: &str, expected: &[(&str, &str)]) -> &Self {
        self.find(&self.results(), name, true, expected);
        self
    }

    /// A failing result line `name` with these fields exists.
    fn expect_fail(&self, name: &str, expected: &[(&str, &str)]) -> &Self {
        self.find(&self.results(), name, false, expected);
        self
    }

    /// The passing result line `name` with these fields.
    fn line(&self, name: &str, expected: &[(&str, &str)]) -> Line {
        self.find(&self.results(), name, true, expected)
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
        // that fails on purpose): from the kernel's grant on.
        let run = self.results_since("memsvc.grant");
        assert!(run.iter().any(|l| l.name == "memsvc.grant"), "the service was not granted memory:\n{}", self.output);
        let failed: Vec<&Line> = run.iter().filter(|l| l.name.starts_with("memclient") && !l.pass).collect();
        assert!(failed.is_empty(), "client checks failed: {failed:?}\n{}", self.output);
        // The launcher started both clients (badges from the kernel,
        // counting up from 1 << 32); the service reclaimed what each left.
        for (client, badge) in [("1", "0x100000000"), ("2", "0x100000001")] {
            let report = self.find(&run, "memclient", true, &[("instance", client), ("failed", "0")]);
            assert!(report.num("passed") >= 30, "only {} checks ran: {report:?}", report.num("passed"));
            self.find(&run, "memsvc.reclaim", true, &[("client", badge), ("folios", "1")]);
        }
        // Folios of any order from the page up: one page and two (plain,
        // below every mapping size), each allocated zeroed and used.
        let granule = self.line("frames", &[]).get("granule").unwrap_or("").to_string();
        let page_kib: u64 = granule.trim_end_matches('K').parse().expect("the granule in KiB");
        for kib in [page_kib, 2 * page_kib] {
            let status = format!("{kib}K: status 0 *");
            let alloc = self.find(&run, "memclient.alloc", true, &[("instance", "1"), ("detail", &status)]);
            assert!(alloc.get("detail").is_some_and(|d| d.ends_with("flags 0")), "{alloc:?}");
            self.find(&run, "memclient.zeroed", true, &[("instance", "1"), ("detail", &format!("{kib}K: *"))]);
        }
        self.find(&run, "memclient.isolation", true, &[("instance", "1")]);
        self.find(&run, "memclient.isolation-data", true, &[("instance", "2"), ("detail", "2 of 2 folios untouched")]);
        self.find(
            &run,
            "launcher",
            true,
            &[("statuses", "memclient-1:0,memclient-2:0"), ("pool_whole", "yes"), ("service_ended", "yes")],
        );
        let service = self.find(&run, "memsvc.run", true, &[("statuses", "memsvc:0,launcher:0"), ("started", "2")]);
        // The service waits in reply_recv: its requests take the IPC fast
        // path (folio_core::ipc::fastpath) whenever its preconditions hold.
        assert!(service.num("fast_ipc") > 0, "no request took the IPC fast path: {service:?}");
        let summary = self.find(&run, "memsvc", true, &[]);
        assert_eq!(summary.num("pool_free"), summary.num("pool_total"), "the pool is not whole again: {summary:?}");
        // Both zeroing paths ran: inline (an ALLOC right after a FREE) and
        // in the background (after the clients napped), and each client
        // found no byte of a previous owner on either.
        for client in ["1", "2"] {
            self.find(&run, "memclient.reuse-zeroed", true, &[("instance", client)]);
            self.find(&run, "memclient.reuse-zeroed-background", true, &[("instance", client)]);
        }
        assert!(summary.num("zeroed_inline_kib") > 0, "nothing was zeroed inline: {summary:?}");
        assert!(summary.num("zeroed_background_kib") > 0, "nothing was zeroed in the background: {summary:?}");
        self
    }

    /// The EL0 task test: IPC with badges between address spaces, hostile
    /// requests answered with errors, a fault stopping only its task.
    fn assert_tasks_ran(&self) -> &Self {
        for badge in ["1", "2", "3", "4"] {
            self.expect("ping", &[("calls", "10"), ("wrong", "0"), ("badge", badge)]);
        }
        self.expect("pong", &[("served", "40")])
            .expect(
                "hostile",
                &[
                    ("no_handle", "1"),
                    ("kernel_pointer", "14"),
                    ("unmapped", "14"),
                    ("too_long", "22"),
                    ("unknown_call", "38"),
                ],
            )
            .expect("hostile.labels", &[("too_long", "22"), ("bad_kind", "15"), ("ok", "0")])
            .expect_fail(
                "task.fault",
                &[("task", "hostile"), ("el", "0"), ("class", "0x24"), ("far", "0x10"), ("label", "null page")],
            )
            .expect("hello", &[("el", "0")])
            .expect("ktest.tasks_run_talk_and_fail_alone", &[])
            // The spinner never makes a system call: hello ends first only
            // because the virtual timer's interrupt preempted it.
            .expect("ktest.timer", &[("ran", "yes"), ("ended", "hello,spinner")])
            .expect("ktest.tasks_are_preempted_by_the_timer", &[])
            .expect("ktest.tasks_calling_a_dead_server_get_an_error", &[])
            // Its client's death notice: the badge and the exit status.
            .expect(
                "watcher",
                &[("poll", "6"), ("timed", "5"), ("client", "0x8"), ("client_status", "7"), ("status", "0")],
            )
    }

    /// The in-kernel tests ran, at least one, and none failed.
    fn assert_ktests_pass(&self) -> &Self {
        let summary = self.line("ktests", &[("failed", "0")]);
        assert!(summary.num("passed") > 0, "no in-kernel test ran:\n{}", self.output);
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
fn run(cmd: Command, stop_at: Option<&str>) -> Boot {
    let run = common::run_until(cmd, BOOT_TIMEOUT, stop_at);
    Boot { output: run.output, status: run.status, peak_rss_kib: run.peak_rss_kib }
}

const VIRT_A72: &[&str] = &["-M", "virt", "-cpu", "cortex-a72", "-m", "1G"];

/// The parser reads back what the formatter writes, quotes and escapes included.
#[test]
fn result_lines_round_trip() {
    use folio_abi::report::{Fields, Value};
    let text = format!(
        "result ktest.x fail{}",
        Fields(&[("plain", &42), ("spaced", &"1 x L1 block"), ("quoted", &"say \"hi\" \\ bye"), ("empty", &"")])
    );
    let line = parse_line(&text).expect("a result line");
    assert_eq!(line.name, "ktest.x");
    assert!(!line.pass);
    assert_eq!(line.num("plain"), 42);
    assert_eq!(line.get("spaced"), Some("1 x L1 block"));
    assert_eq!(line.get("quoted"), Some("say \"hi\" \\ bye"));
    assert_eq!(line.get("empty"), Some(""));
    assert_eq!(format!("{}", Value("x")), "x");
    assert_eq!(parse_line("[ 0.1] INFO  result boot pass"), None);
    assert_eq!(parse_line("result boot maybe"), None);
}

/// Tasks that come and go (issue: 10,000 client lifetimes in one boot), on
/// two cores: the launcher starts them 16 at a time while the memory
/// service lives on; some die holding folios, twenty by a fault, two
/// allocate page-sized folios until refused. Every death notice arrives
/// with the right status, the pool is whole, every child was cleaned up
/// during the run and every kernel frame is back.
#[test]
fn ten_thousand_client_lifetimes_on_two_cores() {
    let run = boot(
        &["-M", "virt", "-cpu", "cortex-a72", "-m", "1G", "-smp", "2"],
        "exit=semihosting ktest=come_and_go memsvc=off",
    );
    run.assert_status(EXIT_OK).assert_ktests_pass().expect(
        "lifetimes",
        &[
            ("lifetimes", "10000"),
            ("faulted", "20"),
            ("wrong_status", "0"),
            ("pool_whole", "yes"),
            ("service_ended", "yes"),
        ],
    );
    run.expect("ktest.lifetimes", &[("spawned", "10000"), ("reaped", "10000"), ("frames_leaked", "0")]);
    // A client that takes the smallest folios until refused gets a typed
    // error (QUOTA_EXCEEDED, 4), never a failed mapping.
    for client in ["1234", "5000", "6234"] {
        let line = run.line("memlife.exhaust", &[("client", client), ("refused_with", "4")]);
        assert!(line.num("folios") > 0, "{line:?}");
    }
    let summary = run.line("memsvc", &[("clients_gone", "10000")]);
    assert_eq!(summary.num("pool_free"), summary.num("pool_total"), "{summary:?}");
    // The service ran them on a heap it grew from its pool (GROW_HEAP):
    // beyond its 4 MiB arena, 2 MiB at a time.
    assert!(summary.num("heap_grown_kib") >= 2048, "{summary:?}");
    assert_eq!(summary.num("heap_kib"), 4096 + summary.num("heap_grown_kib"), "{summary:?}");
}

#[test]
fn virt_at_el1_boots_and_passes_the_kernel_tests() {
    boot(VIRT_A72, "exit=semihosting ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("boot", &[("board", "qemu-virt"), ("entry_el", "1"), ("el", "1")])
        .expect("psci", &[("conduit", "hvc")])
        .expect("memory", &[("banks", "1"), ("ram", "1073741824")])
        .expect("bank", &[("start", "0x40000000"), ("end", "0x80000000"), ("source", "/memory@40000000")])
        .expect("reserved", &[("start", "0x40080000"), ("source", "kernel image")])
        .expect("frames", &[("granule", "4K")])
        .expect("mmu", &[("granule", "4K"), ("linear_map", "1 x L1 block")])
        .expect("ktest.unit", &[("unit", "L2 block"), ("size", "2 MiB"), ("ran", "yes")])
        .expect("ktest.unit", &[("unit", "contiguous L2 block run"), ("size", "32 MiB"), ("ran", "yes")])
        .expect("ktest.unit", &[("unit", "contiguous L3 page run"), ("size", "64 KiB"), ("ran", "yes")])
        .expect("ktest.unit", &[("unit", "L3 page"), ("size", "4 KiB"), ("ran", "yes")])
        .expect("ktest.every_unit_maps_splits_and_coalesces", &[])
        // 100,000 random system calls with hostile arguments: every one
        // returns a status of the ABI, the fuzzer ends normally and every
        // frame comes back.
        .expect("sysfuzz", &[("calls", "100000"), ("strange", "0")])
        .expect("ktest.a_system_call_fuzzer_hurts_nobody", &[])
        // 20,000 random requests to the memory service: every reply a
        // protocol status, the pool whole afterwards, every frame back.
        .expect("memfuzz", &[("requests", "20000"), ("strange", "0"), ("pool_whole", "yes")])
        .expect("ktest.memsvc_survives_a_protocol_fuzzer", &[])
        // A compromised service floods the kernel's memory calls: every
        // call returns a status of the ABI, what it mapped is what it asked
        // for, and every frame comes back.
        .expect("memflood", &[("calls", "50000"), ("strange", "0"), ("wrong_mapping", "0")])
        .expect("ktest.a_compromised_service_flooding_memory_calls_hurts_nobody", &[])
        // Tasks that come and go (100 lifetimes here; the two-core test
        // runs 10,000).
        .expect("lifetimes", &[("lifetimes", "100"), ("wrong_status", "0"), ("pool_whole", "yes")])
        .expect("ktest.lifetimes", &[("spawned", "100"), ("reaped", "100"), ("frames_leaked", "0")])
        .expect("hvo.savings", &[("granule", "4K"), ("size", "64 KiB"), ("eligible", "no"), ("min_order", "7")])
        .assert_tasks_ran()
        .expect_fail("memsvc.start", &[])
        .expect_fail("memclient.sizes", &[("instance", "1"), ("detail", "status 1004, mask 0x0*")])
        .expect("ktest.memsvc_that_cannot_start_fails_its_callers", &[])
        .expect("ktest.deadservice", &[("statuses", "memsvc:1,memclient:1")])
        // The service's fault drill: a write to a shared tail of its own
        // vmemmap is stopped and named by the service's label.
        .expect_fail(
            "task.fault",
            &[
                ("task", "memsvc"),
                ("fault", "permission fault"),
                ("access", "write"),
                ("label", "HVO violation: write to a read-only shared tail of the vmemmap"),
            ],
        )
        .expect("ktest.memsvc_write_to_a_shared_tail_is_named", &[])
        .expect("ktest.deadlines", &[("ran", "yes"), ("with_a_spinner", "sleeper:0,spinner:0")])
        // A task's write is printed with the system lock released.
        .expect("ktest.write_lock", &[("ran", "yes"), ("under_lock", "0")])
        // A hostile holder of pool memory stops at the bound on grants.
        .expect("grantflood", &[("granted", "1024"), ("refusal", "12")])
        .expect("linkflood", &[("linked", "64"), ("refusal", "12")])
        .expect("ktest.a_hostile_granter_gets_out_of_memory_not_the_kernels_heap", &[])
        .assert_memory_service()
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

/// The `hugepages=` pool is the memory service's: reserved at boot,
/// adopted born optimized (one private vmemmap page per folio, shared
/// tails, all-tail last-level tables linked shared), and a client gets a
/// folio of it.
fn expect_adopted(run: &Boot, size: &str, count: u64, folio_bytes: u64, granule_bytes: u64) -> Line {
    run.expect("hugepages.pool", &[("size", size), ("count", &count.to_string()), ("reserved_for", "memsvc")]);
    let adopt = run.line("memsvc.adopt", &[]);
    let plain_per_folio = (folio_bytes / granule_bytes) * 64 / granule_bytes;
    assert!(adopt.num("hugepages_mib") >= (count * folio_bytes) >> 20, "{adopt:?}");
    assert!(adopt.num("folios") >= count, "{adopt:?}");
    // At most one private page per folio (folios below the smallest optimizable order
    // share one).
    assert!(adopt.num("private_pages") <= adopt.num("folios"), "{adopt:?}");
    assert!(adopt.num("private_pages") >= count, "{adopt:?}");
    assert!(adopt.num("plain_pages") >= count * plain_per_folio, "{adopt:?}");
    assert!(adopt.num("shared_tails") <= 8, "{adopt:?}");
    adopt
}

#[test]
fn sixty_1g_pages_are_born_optimized_in_a_64g_guest() {
    let run = boot(VIRT_64G, "exit=semihosting hugepages=1G:60 memsvc=1G");
    run.assert_status(EXIT_OK).expect("memory", &[("banks", "1"), ("ram", "68719476736")]).assert_memory_service();
    // A plain vmemmap would take 245760 pages (960 MiB); a private page per
    // folio and a shared tail stand in for them, and a handful of
    // page-table frames, not one per 2 MiB of vmemmap (480).
    let adopt = expect_adopted(&run, "1 GiB", 60, 1 << 30, 4096);
    assert!(adopt.num("table_frames") < 100, "{adopt:?}");
    run.expect("memclient.alloc", &[("instance", "1"), ("detail", "1G: status 0 *")]);
    // Nothing populated the vmemmap in full: far below the guest's 64 GiB
    // (each client zeroes and fills a 1 GiB page).
    assert!(run.peak_rss_kib > 0 && run.peak_rss_kib < 4 << 20, "QEMU peak RSS {} KiB", run.peak_rss_kib);
}

#[test]
fn a_48g_guest_adopts_1g_and_2m_pools_born_optimized() {
    let args = ["-M", "virt,memory-backend=ram0", "-cpu", "cortex-a72", "-m", "48G"];
    let backend = ["-object", "memory-backend-ram,id=ram0,size=48G,reserve=off"];
    let machine: Vec<&str> = args.iter().chain(backend.iter()).copied().collect();
    let run = boot(&machine, "exit=semihosting hugepages=1G:44,2M:1000");
    run.assert_status(EXIT_OK).assert_memory_service();
    expect_adopted(&run, "1 GiB", 44, 1 << 30, 4096);
    run.expect("hugepages.pool", &[("size", "2 MiB"), ("count", "1000"), ("reserved_for", "memsvc")]);
    run.expect("memclient.alloc", &[("instance", "1"), ("detail", "1G: status 0 *")]);
    assert!(run.peak_rss_kib > 0 && run.peak_rss_kib < 4 << 20, "QEMU peak RSS {} KiB", run.peak_rss_kib);
}

#[test]
fn hugepages_pools_on_16k_and_64k_are_the_services() {
    for (granule, args, size, count, bytes, page) in [
        ("16k", "hugepages=32M:8", "32 MiB", 8, 32u64 << 20, 16384u64),
        ("64k", "hugepages=512M:2", "512 MiB", 2, 512 << 20, 65536),
    ] {
        let run =
            boot(&["-M", "virt", "-cpu", "max", "-m", "3G"], &format!("exit=semihosting granule={granule} {args}"));
        run.assert_status(EXIT_OK).assert_memory_service();
        expect_adopted(&run, size, count, bytes, page);
        let shift = bytes.trailing_zeros();
        let name = if shift >= 30 { format!("{}G", 1 << (shift - 30)) } else { format!("{}M", 1 << (shift - 20)) };
        run.expect("memclient.alloc", &[("instance", "1"), ("detail", &format!("{name}: status 0 *"))]);
    }
}

#[test]
fn an_oversized_hugepages_request_is_capped_once_and_the_run_goes_on() {
    let run = boot(VIRT_A72, "exit=semihosting hugepages=2M:99999999");
    run.assert_status(EXIT_OK).assert_memory_service();
    let capped = run.find(&run.results(), "hugepages.request", false, &[("size", "2 MiB"), ("asked", "99999999")]);
    assert!(capped.num("got") > 300, "{capped:?}");
    let lines = run.output.lines().filter(|l| l.starts_with("result hugepages.request")).count();
    assert_eq!(lines, 1, "reported once, not per folio");
    expect_adopted(&run, "2 MiB", capped.num("got"), 2 << 20, 4096);
}

#[test]
fn bad_hugepages_requests_are_reported_and_skipped() {
    boot(VIRT_A72, "exit=semihosting hugepages=3M:2,2M:4,junk,1G:9")
        .assert_status(EXIT_OK)
        .expect_fail("bootarg", &[("key", "hugepages"), ("value", "junk"), ("expected", "SIZE:COUNT*")])
        .expect_fail(
            "hugepages.request",
            &[("size", "3 MiB"), ("granule", "4K"), ("sizes", "64 KiB,2 MiB,32 MiB,1 GiB")],
        )
        .expect_fail("hugepages.request", &[("size", "1 GiB"), ("asked", "9"), ("got", "0")])
        .expect("hugepages.pool", &[("count", "4"), ("size", "2 MiB"), ("reserved_for", "memsvc")])
        .expect("memsvc.adopt", &[("hugepages_mib", "8")])
        .assert_memory_service();
    boot(VIRT_A72, "exit=semihosting hugepages=2M:4 memsvc=off")
        .assert_status(EXIT_OK)
        .expect_fail("hugepages.request", &[("why", "memsvc=off*")]);
}

/// A row of the savings table of hvo-facts.md, measured by the memory
/// service on a real folio of its pool: (size, descriptors, vmemmap pages,
/// after, freed, saved).
fn expect_savings_row(boot: &Boot, row: (&str, &str, &str, &str, &str, &str)) {
    let (size, descriptors, vmemmap_pages, after, freed, saved) = row;
    let line = boot.line(
        "hvo.savings",
        &[
            ("size", size),
            ("descriptors", descriptors),
            ("vmemmap_pages", vmemmap_pages),
            ("after", after),
            ("freed", freed),
            ("saved", saved),
        ],
    );
    assert_eq!(line.get("allocator_gain"), Some(freed), "the frame allocator disagrees: {line:?}");
}

#[test]
fn virt_with_2g_maps_a_1g_block_with_4k() {
    let run = boot(&["-M", "virt", "-cpu", "cortex-a72", "-m", "2G"], "exit=semihosting ktest=unit");
    run.assert_status(EXIT_OK)
        .expect("mmu", &[("linear_map", "2 x L1 block")])
        .expect("ktest.unit", &[("unit", "L1 block"), ("size", "1 GiB"), ("ran", "yes"), ("at", "0x80000000")])
        .assert_ktests_pass();
    // Every row of the 4K savings table, each measured on a real folio.
    run.expect(
        "hvo.savings",
        &[("size", "64 KiB"), ("descriptors", "16"), ("vmemmap_pages", "1/4"), ("eligible", "no")],
    );
    expect_savings_row(&run, ("2 MiB", "512", "8", "1", "7", "28 KiB"));
    expect_savings_row(&run, ("32 MiB", "8192", "128", "1", "127", "508 KiB"));
    expect_savings_row(&run, ("1 GiB", "262144", "4096", "1", "4095", "16380 KiB"));
}

#[test]
fn virt_entered_at_el2_drops_to_el1() {
    boot(&["-M", "virt,virtualization=on", "-cpu", "cortex-a72", "-m", "1G"], "exit=semihosting ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("boot", &[("entry_el", "2"), ("el", "1")])
        .expect("psci", &[("conduit", "smc")])
        .assert_tasks_ran()
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_gicv3() {
    boot(&["-M", "virt,gic-version=3", "-cpu", "cortex-a72", "-m", "1G"], "exit=semihosting ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("gic", &[("version", "3"), ("distributor", "0x8000000"), ("redistributors", "0x80a0000")])
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
    boot(&args, "exit=semihosting ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("memory", &[("banks", "2"), ("ram", "1610612736")])
        .expect("bank", &[("start", "0x40000000"), ("end", "0x60000000"), ("source", "/memory@40000000")])
        .expect("bank", &[("start", "0x60000000"), ("end", "0xa0000000"), ("source", "/memory@60000000")])
        .expect("cpus", &[("count", "2"), ("enable", "0x0:psci,0x1:psci")])
        .expect("memsvc.grant", &[("zone", "1")])
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_3g_and_cpu_max() {
    boot(&["-M", "virt", "-cpu", "max", "-m", "3G"], "exit=semihosting ktest granule=16k lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("bank", &[("start", "0x40000000"), ("end", "0x100000000")])
        .expect("frames", &[("granule", "16K")])
        .expect("mmu", &[("granule", "16K")])
        .expect("ktest.unit", &[("unit", "contiguous L2 block run"), ("size", "1 GiB"), ("ran", "yes")])
        .expect("ktest.unit", &[("unit", "L2 block"), ("size", "32 MiB"), ("ran", "yes")])
        .expect("ktest.unit", &[("unit", "contiguous L3 page run"), ("size", "2 MiB"), ("ran", "yes")])
        .expect("ktest.unit", &[("unit", "L3 page"), ("size", "16 KiB"), ("ran", "yes")])
        .expect("pan", &[("state", "on")])
        .expect("ktest.pan", &[("pan", "on"), ("kernel_read", "faulted")])
        .expect("sysfuzz", &[("calls", "100000"), ("strange", "0")])
        .expect("memfuzz", &[("requests", "20000"), ("strange", "0"), ("pool_whole", "yes")])
        // Tasks that come and go on 16K; the middle client takes page
        // folios until refused with QUOTA_EXCEEDED.
        .expect("lifetimes", &[("lifetimes", "100"), ("wrong_status", "0"), ("pool_whole", "yes")])
        .expect("memlife.exhaust", &[("client", "50"), ("refused_with", "4")])
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn virt_with_64k_frames() {
    boot(VIRT_A72, "exit=semihosting ktest granule=64k lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("frames", &[("granule", "64K")])
        .expect("mmu", &[("granule", "64K")])
        .expect("ktest.unit", &[("unit", "contiguous L2 block run"), ("size", "16 GiB"), ("ran", "no")])
        .expect("ktest.unit", &[("unit", "L3 page"), ("size", "64 KiB"), ("ran", "yes")])
        // Tasks that come and go on 64K, one exhausting its share.
        .expect("lifetimes", &[("lifetimes", "100"), ("wrong_status", "0"), ("pool_whole", "yes")])
        .expect("memlife.exhaust", &[("client", "50"), ("refused_with", "4")])
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
        .expect("mmu", &[("linear_map", "32 x L2 block, 1 x contiguous L2 block run")])
        .expect(
            "ktest.unit",
            &[("unit", "contiguous L2 block run"), ("size", "16 GiB"), ("ran", "yes"), ("at", "0x400000000")],
        )
        .expect("ktest.unit", &[("unit", "L2 block"), ("size", "512 MiB"), ("ran", "yes")])
        .assert_ktests_pass();
}

#[test]
fn savings_rows_for_16k_and_64k() {
    let run = boot(&["-M", "virt", "-cpu", "max", "-m", "3G"], "exit=semihosting granule=16k");
    run.assert_status(EXIT_OK).expect(
        "hvo.savings",
        &[("size", "2 MiB"), ("descriptors", "128"), ("vmemmap_pages", "1/2"), ("eligible", "no")],
    );
    expect_savings_row(&run, ("32 MiB", "2048", "8", "1", "7", "112 KiB"));
    expect_savings_row(&run, ("1 GiB", "65536", "256", "1", "255", "4080 KiB"));
    let run = boot(&["-M", "virt", "-cpu", "cortex-a72", "-m", "2G"], "exit=semihosting granule=64k");
    // The memory service's quota (half the pool) holds a 512 MiB page here.
    run.assert_status(EXIT_OK)
        .assert_memory_service()
        .expect("memclient.demote", &[("detail", "512M -> 256 x 2M: status 0")])
        .expect("memclient.stats", &[("detail", "zone 0 size 512M: folios*")])
        .expect(
            "hvo.savings",
            &[("size", "2 MiB"), ("descriptors", "32"), ("vmemmap_pages", "1/32"), ("eligible", "no")],
        )
        .expect("hvo.savings", &[("size", "16 GiB"), ("fits", "no")]);
    expect_savings_row(&run, ("512 MiB", "8192", "8", "1", "7", "448 KiB"));
}

#[test]
fn the_savings_row_of_a_16g_folio_on_64k_in_a_64g_guest() {
    // The service's pool holds one 16 GiB block, on which it measures that
    // row of the savings table; its clients may hold 1 GiB each.
    let run = boot(VIRT_64G, "exit=semihosting granule=64k memsvc=17G memsvc_quota=1G");
    run.assert_status(EXIT_OK).assert_memory_service();
    expect_savings_row(&run, ("16 GiB", "262144", "256", "1", "255", "16320 KiB"));
}

#[test]
fn bad_boot_arguments_are_reported_and_ignored() {
    boot(VIRT_A72, "exit=semihosting granule=16k bogus=1 granule=9k loglevel=loud ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect_fail("bootarg", &[("arg", "bogus=1"), ("why", "unknown")])
        .expect_fail("bootarg", &[("key", "granule"), ("value", "9k"), ("expected", "4k, 16k or 64k")])
        .expect_fail("bootarg", &[("key", "loglevel"), ("value", "loud")])
        .expect_fail("granule", &[("requested", "16K"), ("used", "4K"), ("mmfr0", "0x1124")])
        .expect("frames", &[("granule", "4K")])
        .assert_ktests_pass();
}

#[test]
fn an_unexpected_fault_is_reported_and_fails_the_run() {
    boot(VIRT_A72, "exit=semihosting crash=fault memsvc=off")
        .assert_status(EXIT_FAULT)
        .expect_fail(
            "exception",
            &[
                ("el", "1"),
                ("class", "0x25"),
                ("fault", "translation fault"),
                ("level", "0"),
                ("access", "read"),
                ("far", "0xffff7fffdead0000"),
            ],
        )
        .expect_fail("exit", &[("status", "3")]);
}

#[test]
fn a_panic_is_reported_and_fails_the_run() {
    boot(VIRT_A72, "exit=semihosting crash=panic memsvc=off")
        .assert_status(EXIT_PANIC)
        .expect_fail("panic", &[("file", "crates/kernel/src/kernel.rs"), ("message", "crash=panic asked for a panic")])
        .expect_fail("exit", &[("status", "2")]);
}

/// QEMU virt's own DTB with its PL011 renamed (so folio finds no console)
/// and compacted to its used size: the fault or panic report must still
/// reach the board's own UART, with exit status 5 (failed with no console).
#[test]
fn a_failure_with_no_console_is_reported_on_the_boards_uart() {
    let dir = std::env::temp_dir();
    let dumped = dir.join(format!("folio-virt-{}.dtb", std::process::id()));
    let status = qemu(&["-M", &format!("virt,dumpdtb={}", dumped.display()), "-cpu", "cortex-a72", "-m", "1G"])
        .status()
        .expect("QEMU dumps its DTB");
    assert!(status.success(), "QEMU could not dump virt's DTB");
    let mut dtb = std::fs::read(&dumped).expect("the dumped DTB");
    let _ = std::fs::remove_file(&dumped);
    let at = dtb.windows(10).position(|w| w == b"arm,pl011\0").expect("virt's DTB has a PL011");
    dtb[at..at + 10].copy_from_slice(b"arm,pl0xx\0");
    let word = |d: &[u8], i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]) as usize;
    let end = (word(&dtb, 8) + word(&dtb, 36)).max(word(&dtb, 12) + word(&dtb, 32));
    dtb.truncate(end);
    dtb[4..8].copy_from_slice(&(end as u32).to_be_bytes());
    let path = dir.join(format!("folio-virt-nouart-{}.dtb", std::process::id()));
    std::fs::write(&path, &dtb).expect("write the patched DTB");
    let path_text = path.display().to_string();
    let fault = boot(
        &["-M", "virt", "-cpu", "cortex-a72", "-m", "1G", "-dtb", &path_text],
        "exit=semihosting crash=fault memsvc=off",
    );
    let panic = boot(
        &["-M", "virt", "-cpu", "cortex-a72", "-m", "1G", "-dtb", &path_text],
        "exit=semihosting crash=panic memsvc=off",
    );
    let _ = std::fs::remove_file(&path);
    assert!(!fault.results().iter().any(|l| l.name == "boot"), "a console existed:\n{}", fault.output);
    fault
        .assert_status(EXIT_NO_CONSOLE)
        .expect_fail("exception", &[("class", "0x25"), ("far", "0xffff7fffdead0000")])
        .expect_fail("exit", &[("status", "5")]);
    panic
        .assert_status(EXIT_NO_CONSOLE)
        .expect_fail("panic", &[("message", "crash=panic asked for a panic")])
        .expect_fail("exit", &[("status", "5")]);
}

/// Writes `blob` to a file of the temporary directory named for this test
/// run, for QEMU's `-dtb`.
fn temp_dtb(name: &str, blob: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("folio-{name}-{}.dtb", std::process::id()));
    std::fs::write(&path, blob).expect("write the DTB");
    path
}

/// The Aspeed AST2700 (four Cortex-A35, GICv3, thirteen 16550 UARTs with
/// 32-bit registers, RAM at 16 GiB) as its DTB would describe it for
/// folio: one core (QEMU gives this machine no PSCI), the GIC, the timer,
/// and two 16550s of which `stdout-path` names the second, the one QEMU
/// connects to `-serial` (UART12; UART0 goes nowhere). QEMU's own `virt`
/// has no 16550, and this is the machine of QEMU's that has one and a
/// GICv3: the console of kvmtool, Firecracker and crosvm guests is the
/// same `ns16550a`.
fn ast2700_dtb() -> Vec<u8> {
    use folio_core::testing::fdt::{Node, cells, string};
    let uart = |base: u32| {
        Node::new(&format!("serial@{base:x}"))
            .with("compatible", string("ns16550a"))
            .with("reg", cells(&[base, 0x100]))
            .with("reg-shift", cells(&[2]))
            .with("reg-io-width", cells(&[4]))
            .with("clock-frequency", cells(&[1_846_153]))
            .with("interrupts", cells(&[0, 132, 4]))
    };
    let soc = Node::new("soc")
        .with("compatible", string("simple-bus"))
        .with("#address-cells", cells(&[1]))
        .with("#size-cells", cells(&[1]))
        .with("ranges", Vec::new())
        .with_child(
            Node::new("interrupt-controller@12200000")
                .with("compatible", string("arm,gic-v3"))
                .with("#interrupt-cells", cells(&[3]))
                .with("interrupt-controller", Vec::new())
                .with("reg", cells(&[0x1220_0000, 0x1_0000, 0x1228_0000, 0x8_0000]))
                .with("phandle", cells(&[1])),
        )
        .with_child(uart(0x14c3_3000))
        .with_child(uart(0x14c3_3b00));
    Node::new("")
        .with("compatible", string("aspeed,ast2700-evb"))
        .with("#address-cells", cells(&[2]))
        .with("#size-cells", cells(&[2]))
        .with("interrupt-parent", cells(&[1]))
        .with_child(Node::new("chosen").with("stdout-path", string("serial12:115200n8")))
        .with_child(
            Node::new("aliases")
                .with("serial0", string("/soc/serial@14c33000"))
                .with("serial12", string("/soc/serial@14c33b00")),
        )
        .with_child(
            Node::new("memory@400000000")
                .with("device_type", string("memory"))
                .with("reg", cells(&[4, 0, 0, 0x4000_0000])),
        )
        .with_child(
            Node::new("cpus").with("#address-cells", cells(&[1])).with("#size-cells", cells(&[0])).with_child(
                Node::new("cpu@0")
                    .with("device_type", string("cpu"))
                    .with("compatible", string("arm,cortex-a35"))
                    .with("reg", cells(&[0])),
            ),
        )
        .with_child(
            Node::new("timer")
                .with("compatible", string("arm,armv8-timer"))
                .with("interrupts", cells(&[1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8])),
        )
        .with_child(soc)
        .encode(&[])
}

/// A 16550 console, the one `stdout-path` names and not the first listed:
/// every kernel test on the AST2700 (4K), and the memory service and its
/// clients on 16K, speak through UART12.
#[test]
fn a_16550_console_named_by_stdout_path_on_the_ast2700() {
    let dtb = temp_dtb("ast2700", &ast2700_dtb());
    let dtb_text = dtb.display().to_string();
    let machine = ["-M", "ast2700-evb", "-m", "1G", "-dtb", &dtb_text];
    let ktest = boot(&machine, "exit=semihosting ktest lifetimes=100");
    let granule_16k = boot(&machine, "exit=semihosting granule=16k");
    let _ = std::fs::remove_file(&dtb);
    for run in [&ktest, &granule_16k] {
        run.assert_status(EXIT_OK)
            .expect("boot", &[("board", "generic"), ("entry_el", "2"), ("el", "1"), ("cpu", "Cortex-A35")])
            .expect("console", &[("driver", "ns16550"), ("base", "0x14c33b00")])
            .expect("gic", &[("version", "3"), ("distributor", "0x12200000")])
            .expect("timer", &[("intid", "27"), ("frequency", "1125000000")])
            .expect("bank", &[("start", "0x400000000"), ("end", "0x440000000")])
            .assert_memory_service();
    }
    ktest.expect("frames", &[("granule", "4K")]).assert_tasks_ran().assert_ktests_pass();
    granule_16k.expect("frames", &[("granule", "16K")]);
}

/// QEMU virt's own DTB (GICv3, four cores) with its redistributor region
/// replaced by `regions`, each (first core, cores) of QEMU's frames, in
/// that order; written for `-dtb`.
fn virt_gicv3_with_redistributor_regions(name: &str, regions: &[(u64, u64)]) -> std::path::PathBuf {
    use folio_core::testing::fdt::{Node, cells};
    const FRAMES: u64 = 0x2_0000;
    let dumped = std::env::temp_dir().join(format!("folio-virt-gicv3-{name}-{}.dtb", std::process::id()));
    let status = qemu(&[
        "-M",
        &format!("virt,gic-version=3,dumpdtb={}", dumped.display()),
        "-cpu",
        "cortex-a72",
        "-m",
        "1G",
        "-smp",
        "4",
    ])
    .status()
    .expect("QEMU dumps its DTB");
    assert!(status.success(), "QEMU could not dump virt's DTB");
    let (rsv, mut root) = Node::decode(&std::fs::read(&dumped).expect("the dumped DTB"));
    let _ = std::fs::remove_file(&dumped);
    let gic = root.find(&|n| n.is_compatible("arm,gic-v3")).expect("virt's GICv3");
    let reg: Vec<u64> =
        gic.get("reg").expect("the GIC's reg").chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect();
    let mut split = vec![reg[0], reg[1]];
    for &(first, cores) in regions {
        split.extend([reg[2] + first * FRAMES, cores * FRAMES]);
    }
    let words: Vec<u32> = split.iter().flat_map(|&v| [(v >> 32) as u32, v as u32]).collect();
    gic.set("reg", cells(&words));
    gic.set("#redistributor-regions", cells(&[regions.len() as u32]));
    temp_dtb(&format!("virt-gicv3-{name}"), &root.encode(&rsv))
}

/// GICv3 redistributors in two regions, the boot core's only in the
/// second (QEMU's one region split in two and listed in reverse: cores
/// 1-3, then core 0): every core finds its redistributor, never reading
/// past its region's end (core 0's frame is not flagged last), and the
/// cross-core tests pass. A core no region serves is reported and left
/// out; when it is the boot core, the machine is refused (status 4).
#[test]
fn gicv3_redistributors_in_two_regions_serve_every_core() {
    let boot_with = |name: &str, regions: &[(u64, u64)], bootargs: &str| {
        let dtb = virt_gicv3_with_redistributor_regions(name, regions);
        let dtb_text = dtb.display().to_string();
        let run = boot(
            &["-M", "virt,gic-version=3", "-cpu", "cortex-a72", "-m", "1G", "-smp", "4", "-dtb", &dtb_text],
            bootargs,
        );
        let _ = std::fs::remove_file(&dtb);
        run
    };
    let split = boot_with("split", &[(1, 3), (0, 1)], "exit=semihosting ktest=tasks lifetimes=100");
    split
        .assert_status(EXIT_OK)
        .expect("gic", &[("version", "3"), ("redistributor_regions", "2"), ("redistributors", "0x80c0000")])
        .expect("cores", &[("online", "4"), ("listed", "4")])
        .expect("ktest.tasks_talk_across_cores", &[])
        .expect("ktest.tasks_are_rescheduled_by_an_ipi", &[])
        .assert_ktests_pass();
    let two_served = boot_with("two-served", &[(0, 1), (1, 1)], "exit=semihosting");
    two_served.assert_status(EXIT_OK).expect("cores", &[("online", "2"), ("listed", "4")]).assert_memory_service();
    for core in ["2", "3"] {
        two_served.expect_fail("core", &[("index", core), ("why", "no interrupts*")]);
    }
    let boot_core_unserved = boot_with("boot-core-unserved", &[(1, 3)], "exit=semihosting");
    boot_core_unserved
        .assert_status(EXIT_NO_MACHINE)
        .expect_fail("interrupts", &[("core", "0"), ("why", "no redistributor*")]);
}

#[test]
fn rpi4_with_the_real_dtb() {
    boot(&["-M", "raspi4b", "-dtb", RPI4_DTB], "exit=semihosting ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("boot", &[("board", "rpi4"), ("model", "Raspberry Pi 4 Model B"), ("entry_el", "2"), ("el", "1")])
        .expect("memory", &[("banks", "1"), ("ram", "1006632960")])
        .expect("bank", &[("start", "0x0"), ("end", "0x3c000000"), ("source", "/memory@0")])
        .expect("reserved", &[("start", "0x0"), ("end", "0x1000"), ("source", "/memreserve/")])
        .expect("console", &[("driver", "pl011"), ("base", "0xfe201000")])
        .expect("gic", &[("version", "2"), ("distributor", "0xff841000"), ("cpu_interface", "0xff842000")])
        .expect(
            "cpus",
            &[
                ("count", "4"),
                ("enable", "0x0:spin-table@0xd8,0x1:spin-table@0xe0,0x2:spin-table@0xe8,0x3:spin-table@0xf0"),
            ],
        )
        .expect("psci", &[("conduit", "none")])
        .expect("core", &[("index", "3"), ("mpidr", "0x80000003"), ("el", "1")])
        .expect("cores", &[("online", "4"), ("listed", "4")])
        .expect("ktest.tasks_talk_across_cores", &[])
        .expect("ktest.tasks_are_preempted_on_a_secondary_core", &[])
        .expect("ktest.torture", &[("ran", "yes"), ("readers", "3"), ("rounds", "5000000")])
        .expect("ktest.tasks_survive_remapping_under_them", &[])
        .expect("ktest.tasks_are_rescheduled_by_an_ipi", &[])
        .expect("mmu", &[("granule", "4K")])
        .expect("ktest.unit", &[("unit", "L1 block"), ("ran", "no")])
        .expect("ktest.unit", &[("unit", "contiguous L2 block run"), ("size", "32 MiB"), ("ran", "yes")])
        .assert_tasks_ran()
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn rpi4_with_64k_frames() {
    boot(&["-M", "raspi4b", "-dtb", RPI4_DTB], "exit=semihosting ktest granule=64k lifetimes=100")
        .assert_status(EXIT_OK)
        .expect("frames", &[("granule", "64K")])
        .expect("mmu", &[("granule", "64K")])
        .expect("ktest.unit", &[("unit", "contiguous L3 page run"), ("size", "2 MiB"), ("ran", "yes")])
        .assert_memory_service()
        .assert_ktests_pass();
}

#[test]
fn rpi4_without_a_dtb_falls_back_to_defaults() {
    boot(&["-M", "raspi4b"], "exit=semihosting ktest lifetimes=100")
        .assert_status(EXIT_OK)
        .expect_fail("dtb", &[("address", "0x100"), ("why", "bad magic*")])
        .expect("machine.defaults", &[("board", "rpi4"), ("atags", "true")])
        .expect("bank", &[("start", "0x0"), ("end", "0x3c000000"), ("source", "ATAG_MEM")])
        .assert_ktests_pass();
}

#[test]
fn entered_at_el3_says_so_and_stops() {
    // The generic loader starts the CPU at its reset EL: EL3 on raspi4b.
    let mut cmd = qemu(&["-M", "raspi4b"]);
    let raw = format!("loader,file={},addr=0x80000,force-raw=on", image().display());
    cmd.args(["-device", &raw, "-device", "loader,addr=0x80000,cpu-num=0"]);
    let run = run(cmd, Some("result boot fail"));
    run.expect_fail("boot", &[("entry_el", "3")]);
    assert_eq!(run.status, None, "the kernel must stop, not exit");
}

#[test]
fn four_cores_come_up_with_psci_on_virt() {
    for machine in ["virt", "virt,gic-version=3,virtualization=on"] {
        let run = boot(
            &["-M", machine, "-cpu", "cortex-a72", "-m", "1G", "-smp", "4"],
            "exit=semihosting ktest=tasks lifetimes=100",
        );
        run.assert_status(EXIT_OK);
        for core in 1..4 {
            let mpidr = format!("0x8000000{core}");
            run.expect("core", &[("index", &core.to_string()), ("mpidr", &mpidr), ("el", "1")]);
        }
        run.expect("cores", &[("online", "4"), ("listed", "4")])
            .expect(
                "ktest.across",
                &[("ran_on", "pong:0b1,ping-a:0b10,ping-b:0b100,ping-c:0b1000,ping-d:0b10"), ("tables_retired", "yes")],
            )
            .expect("ktest.tasks_talk_across_cores", &[])
            .expect("ktest.preempt", &[("core", "3"), ("ended", "hello,spinner")])
            .expect("ktest.tasks_are_preempted_on_a_secondary_core", &[])
            .expect("ktest.torture", &[("ran", "yes"), ("readers", "3"), ("rounds", "5000000")])
            .expect("ktest.tasks_survive_remapping_under_them", &[])
            .expect("ktest.tasks_are_rescheduled_by_an_ipi", &[])
            .expect("ktest.tasks_recycle_asids_across_generations", &[])
            .expect("ktest.tasks_keep_their_fp_simd_registers", &[])
            // Long messages through the IPC buffers, on 4K.
            .expect("longipc.lengths", &[("bad", "0")])
            .expect("longipc.truncated", &[("sent", "40"), ("untouched", "true")])
            .expect("ktest.tasks_send_long_messages", &[])
            // Deadlines expire on one core and on a secondary one.
            .expect("ktest.deadlines", &[("ran", "yes"), ("alone", "sleeper:0")])
            .expect("ktest.deadlines.secondary", &[("ran", "yes"), ("core", "3"), ("statuses", "sleeper:0")])
            .assert_tasks_ran()
            .assert_ktests_pass()
            .assert_memory_service();
    }
}

/// A vCPU without a PMU (common in clouds; under KVM every PMU access is
/// then UNDEFINED): the kernel probes ID_AA64DFR0_EL1 before touching the
/// PMU, tells tasks at start, and they time themselves with the virtual
/// counter instead. The PMU is on with every other `-cpu` here.
#[test]
fn a_vcpu_without_a_pmu_boots_and_tasks_use_the_virtual_counter() {
    boot(
        &["-M", "virt", "-cpu", "cortex-a72,pmu=off", "-m", "1G", "-smp", "2"],
        "exit=semihosting ktest=tasks lifetimes=100",
    )
    .assert_status(EXIT_OK)
    .expect("pmu", &[("present", "no")])
    .expect("hello", &[("cycles_from", "virtual")])
    .assert_tasks_ran()
    .assert_ktests_pass()
    .assert_memory_service();
    boot(VIRT_A72, "exit=semihosting ktest=tasks_run")
        .assert_status(EXIT_OK)
        .expect("pmu", &[("present", "yes")])
        .expect("hello", &[("cycles_from", "pmu")]);
}

/// Cores idle in WFI (a deadline is pending) are woken by the reschedule
/// SGI when a call or a reply is for them: under icount the run is exact,
/// and the kernel test counts the SGI wake-ups (none without them), on two
/// cores and four, GICv2 and v3.
#[test]
fn idle_cores_in_wfi_are_woken_by_the_reschedule_sgi() {
    for (machine, cores) in [("virt", "2"), ("virt,gic-version=3", "4")] {
        let run = boot(
            &["-M", machine, "-cpu", "cortex-a72", "-m", "1G", "-smp", cores, "-icount", "shift=0,sleep=off"],
            "exit=semihosting ktest=tasks_wake memsvc=off",
        );
        run.assert_status(EXIT_OK).expect("ktest.tasks_wake_cores_sleeping_in_wfi", &[]).assert_ktests_pass();
        let line = run.find(&run.results_since("ktest.wfi"), "ktest.wfi", true, &[("ran", "yes")]);
        assert!(line.num("wakeups") > 0, "no core in WFI was woken by the SGI: {line:?}");
    }
}

/// The SMP tests on the 16K and 64K granules (four cores, GICv2 and v3).
#[test]
fn four_cores_with_16k_and_64k_granules() {
    for (machine, cpu, granule) in [("virt,gic-version=3", "max", "16K"), ("virt", "cortex-a72", "64K")] {
        let run = boot(
            &["-M", machine, "-cpu", cpu, "-m", "1G", "-smp", "4"],
            &format!("exit=semihosting ktest=tasks granule={granule} memsvc=off lifetimes=100"),
        );
        // Every core turns PAN on for itself where the CPU has it (max).
        let pan = if cpu == "max" { "on" } else { "absent" };
        for core in ["1", "2", "3"] {
            run.expect("core", &[("index", core), ("pan", pan)]);
        }
        run.assert_status(EXIT_OK)
            .expect("mmu", &[("granule", granule)])
            .expect("cores", &[("online", "4"), ("listed", "4")])
            .expect("ktest.tasks_talk_across_cores", &[])
            .expect("ktest.torture", &[("ran", "yes"), ("readers", "3"), ("rounds", "5000000")])
            .expect("ktest.tasks_survive_remapping_under_them", &[])
            .expect("ktest.tasks_are_rescheduled_by_an_ipi", &[])
            .expect("ktest.tasks_recycle_asids_across_generations", &[])
            // Long messages through the IPC buffers, on 16K and 64K.
            .expect("longipc.lengths", &[("bad", "0")])
            .expect("longipc.truncated", &[("sent", "40"), ("untouched", "true")])
            .expect("ktest.tasks_send_long_messages", &[])
            // FP/SIMD state loaded lazily, only for the tasks that use it,
            // kept across migrations; thread pointers kept per task.
            .expect("ktest.simd", &[("non_fp_loads", "0")])
            .expect("ktest.tasks_keep_their_fp_simd_registers", &[])
            .assert_ktests_pass();
        // SVE stays trapped: where the CPU has it (max), its use is class
        // 0x19 (where not, undefined: class 0x0); the task is stopped.
        let (sve, class) = if cpu == "max" { ("yes", "0x19") } else { ("no", "0x0") };
        run.expect_fail("task.fault", &[("task", "svecheck"), ("class", class)])
            .expect("ktest.sve", &[("sve", sve), ("statuses", "svecheck:139,hello:7")])
            .expect("ktest.tasks_using_sve_are_stopped", &[]);
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
        .expect("core", &[("index", "1"), ("mpidr", "0x80000001")])
        .expect_fail("core", &[("index", "2"), ("why", "did not come up")])
        .expect_fail("core", &[("index", "3"), ("why", "no way to start it*")])
        .expect("cores", &[("online", "2"), ("listed", "4")])
        .expect("ktest.tasks_talk_across_cores", &[])
        .assert_ktests_pass();
}

#[test]
fn rpi4_without_a_dtb_starts_its_cores_from_the_default_spin_table() {
    boot(&["-M", "raspi4b"], "exit=semihosting")
        .assert_status(EXIT_OK)
        .expect("core", &[("index", "1"), ("mpidr", "0x80000001")])
        .expect("cores", &[("online", "4"), ("listed", "4")]);
}
