//! folio under a real hypervisor: Linux KVM (Debian's arm64 kernel, VHE and
//! nVHE), nested in QEMU TCG (`-M virt,virtualization=on`), with Debian's
//! arm64 QEMU as the VMM inside. Asserts on folio's own result lines.
//!
//! The outer guest's userland is an initramfs this test writes: the files
//! `tools/kvm/fetch.sh` extracted from Debian's arm64 packages
//! (`FOLIO_KVM_ROOT`, default `target/kvm/rootfs`; `make test` and `make
//! test-kvm` fetch it first, cached), the folio image, and an `/init` that
//! runs each guest under `-accel kvm` and frames its console output with
//! `=== run NAME` and `=== end NAME status=N` lines. Semihosting does not
//! exist under KVM: folio exits through PSCI, so a run's outcome is read off
//! its console (`result exit pass status=0`), not QEMU's status.
//!
//! Every QEMU has a timeout (the outer one, and `timeout` around each guest).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Line, image, parse_line};

/// The whole nested session: the outer boot and every guest run.
const OUTER_TIMEOUT: Duration = Duration::from_secs(900);
/// One guest under KVM (busybox `timeout` inside the outer guest).
const GUEST_TIMEOUT_SECS: u32 = 180;
/// The timer-preemption tests, which failed in about 2 of 3 runs under KVM
/// before the timer was re-armed before its EOI.
const TIMER_RUNS: usize = 10;

fn root() -> PathBuf {
    let path = std::env::var_os("FOLIO_KVM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/kvm/rootfs"));
    assert!(
        path.join(".complete").exists(),
        "no KVM userland at {}: run `make test` or `make test-kvm`, which fetch it first",
        path.display()
    );
    path
}

/// One folio run under KVM: extra QEMU options and the command line.
struct GuestRun {
    name: String,
    qemu: &'static str,
    bootargs: &'static str,
}

fn guest(name: &str, qemu: &'static str, bootargs: &'static str) -> GuestRun {
    GuestRun { name: name.to_string(), qemu, bootargs }
}

/// The `/init` of the outer guest: each run framed by marker lines.
fn init_script(runs: &[GuestRun]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox mkdir -p /proc /sys /dev\n\
         /bin/busybox mount -t proc proc /proc\n\
         /bin/busybox mount -t sysfs sys /sys\n\
         /bin/busybox mount -t devtmpfs dev /dev\n\
         echo \"=== kvm $(/bin/busybox uname -r) $(/bin/busybox cat /sys/module/kvm_arm/parameters/mode 2>/dev/null)\"\n\
         /bin/busybox dmesg | /bin/busybox grep -i 'kvm \\['\n",
    );
    for r in runs {
        s.push_str(&format!(
            "echo '=== run {name}'\n\
             /bin/busybox timeout {GUEST_TIMEOUT_SECS} /usr/bin/qemu-system-aarch64 -M virt,gic-version=3 -accel kvm \
             -cpu host -m 1G -display none -monitor none -serial stdio -nic none -no-reboot {qemu} \
             -kernel /folio.img -append '{args}' </dev/null\n\
             echo \"=== end {name} status=$?\"\n",
            name = r.name,
            qemu = r.qemu,
            args = r.bootargs
        ));
    }
    s.push_str("/bin/busybox poweroff -f\n");
    s
}

/// A newc cpio archive of `root` (less what no run needs: modules, the
/// kernel itself, documentation) and the extra files.
fn write_initramfs(root: &Path, extra: &[(&str, Vec<u8>, u32)], out: &Path) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("create the initramfs"));
    let mut ino = 1u32;
    let mut entry = |w: &mut std::io::BufWriter<std::fs::File>, name: &str, mode: u32, data: &[u8]| {
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let header = format!(
            "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            0,
            0,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        ino += 1;
        w.write_all(header.as_bytes()).unwrap();
        w.write_all(name.as_bytes()).unwrap();
        w.write_all(&[0]).unwrap();
        let pad = (4 - (110 + name.len() + 1) % 4) % 4;
        w.write_all(&[0; 3][..pad]).unwrap();
        w.write_all(data).unwrap();
        w.write_all(&[0; 3][..(4 - data.len() % 4) % 4]).unwrap();
    };
    let skip = ["lib/modules", "boot", "usr/share/doc", "usr/share/man", "usr/share/locale", "var"];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel))
            .expect("read the KVM userland")
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let rs = r.to_str().expect("UTF-8 paths");
            if skip.contains(&rs) || rs == ".complete" {
                continue;
            }
            let path = root.join(&r);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                entry(&mut w, rs, mode, target.to_str().unwrap().as_bytes());
            } else if meta.is_dir() {
                entry(&mut w, rs, mode, &[]);
                stack.push(r);
            } else if meta.is_file() {
                entry(&mut w, rs, mode, &std::fs::read(&path).unwrap());
            }
        }
    }
    for (name, data, perm) in extra {
        entry(&mut w, name, 0o100000 | perm, data);
    }
    entry(&mut w, "TRAILER!!!", 0, &[]);
    w.flush().unwrap();
}

/// Boots the outer machine with the runs; returns its console output.
fn nested(runs: &[GuestRun], outer_cmdline: &str, tag: &str) -> String {
    let root = root();
    let kernel = std::fs::read_dir(root.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .expect("a Debian arm64 kernel in the KVM userland");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let initrd = out_dir.join(format!("kvm-{tag}.cpio"));
    let init = init_script(runs).into_bytes();
    let folio = std::fs::read(image()).unwrap();
    write_initramfs(&root, &[("init", init, 0o755), ("folio.img", folio, 0o644)], &initrd);
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(["-M", "virt,virtualization=on,gic-version=3", "-cpu", "max,pauth-impdef=on", "-smp", "2", "-m", "4G"])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", outer_cmdline]);
    let output = common::run_until(cmd, OUTER_TIMEOUT, None).output;
    let _ = std::fs::remove_file(&initrd);
    output
}

/// One guest run's console: its result lines and the VMM's exit status.
struct Guest<'a> {
    name: &'a str,
    results: Vec<Line>,
    vmm_status: Option<i32>,
    text: &'a str,
}

impl Guest<'_> {
    fn has(&self, name: &str, pass: bool, fields: &[(&str, &str)]) -> bool {
        self.results.iter().any(|l| l.name == name && l.pass == pass && l.matches(fields))
    }

    fn expect(&self, name: &str, fields: &[(&str, &str)]) -> &Self {
        assert!(self.has(name, true, fields), "{}: no `result {name} pass` with {fields:?}:\n{}", self.name, self.text);
        self
    }

    /// folio exited 0 through PSCI and QEMU ended normally.
    fn expect_exit_ok(&self) -> &Self {
        assert_eq!(self.vmm_status, Some(0), "{}: the VMM's status:\n{}", self.name, self.text);
        self.expect("exit", &[("status", "0")])
    }

    /// The memory service and both test clients ran and passed every check.
    fn expect_memory_service(&self) -> &Self {
        self.expect("memsvc.run", &[("statuses", "memsvc:0,launcher:0"), ("started", "2")])
            .expect("launcher", &[("statuses", "memclient-1:0,memclient-2:0")])
            .expect("memclient", &[("instance", "1"), ("failed", "0")])
            .expect("memclient", &[("instance", "2"), ("failed", "0")])
    }
}

/// Splits the session's output into guest runs, by their marker lines.
fn guests(output: &str) -> Vec<Guest<'_>> {
    let mut out = Vec::new();
    let mut rest = output;
    while let Some(start) = rest.find("=== run ") {
        let after = &rest[start + 8..];
        let name = after.lines().next().unwrap_or("").trim();
        let end_marker = format!("=== end {name} status=");
        let Some(end) = after.find(&end_marker) else { break };
        let text = &after[..end];
        let status = after[end + end_marker.len()..].lines().next().and_then(|s| s.trim().parse().ok());
        let results = text.lines().filter_map(parse_line).collect();
        out.push(Guest { name, results, vmm_status: status, text });
        rest = &after[end..];
    }
    out
}

fn find<'a>(all: &'a [Guest<'a>], name: &str) -> &'a Guest<'a> {
    all.iter().find(|g| g.name == name).unwrap_or_else(|| panic!("no run {name} in the session"))
}

/// KVM with VHE (Debian's default): the in-kernel tests and the memory
/// service on 4K and 64K, on two vCPUs, a vCPU without a PMU, and the timer
/// preemption tests ten times.
#[test]
fn folio_runs_under_kvm_with_vhe() {
    let mut runs = vec![
        guest("4k", "", "ktest"),
        guest("64k", "", "granule=64k"),
        guest("smp2", "-smp 2", "ktest"),
        guest("no-pmu", "-cpu host,pmu=off", "ktest=preempted"),
    ];
    for i in 0..TIMER_RUNS {
        runs.push(guest(&format!("timer-{i}"), "-smp 2", "ktest=preempted memsvc=off"));
    }
    let output = nested(&runs, "console=ttyAMA0 rdinit=/init quiet", "vhe");
    assert!(output.contains("=== kvm 6."), "the outer guest did not start its init:\n{output}");
    assert!(output.contains("VHE mode initialized successfully"), "KVM is not in VHE mode:\n{output}");
    let all = guests(&output);
    assert_eq!(all.len(), runs.len(), "runs that ended:\n{output}");
    find(&all, "4k")
        .expect_exit_ok()
        .expect("gic", &[("version", "3")])
        .expect("pmu", &[("present", "yes")])
        .expect("ktests", &[("failed", "0")])
        .expect_memory_service();
    find(&all, "64k").expect_exit_ok().expect("mmu", &[("granule", "64K")]).expect_memory_service();
    find(&all, "smp2")
        .expect_exit_ok()
        .expect("cores", &[("online", "2")])
        .expect("ktests", &[("failed", "0")])
        .expect_memory_service();
    // A vCPU without a PMU: folio probes ID_AA64DFR0_EL1 first, never
    // touches the PMU, and its tasks time themselves with the virtual counter.
    find(&all, "no-pmu")
        .expect_exit_ok()
        .expect("pmu", &[("present", "no")])
        .expect("ktest.tasks_are_preempted_by_the_timer", &[])
        .expect_memory_service();
    for i in 0..TIMER_RUNS {
        find(&all, &format!("timer-{i}"))
            .expect_exit_ok()
            .expect("ktest.tasks_are_preempted_by_the_timer", &[])
            .expect("ktest.tasks_are_preempted_on_a_secondary_core", &[])
            .expect("ktests", &[("passed", "2"), ("failed", "0")]);
    }
}

/// KVM with nVHE (`kvm-arm.mode=nvhe`: the hypervisor at EL2, the host
/// kernel at EL1): the in-kernel tests and the memory service.
#[test]
fn folio_runs_under_kvm_with_nvhe() {
    let runs = [guest("4k", "", "ktest")];
    let output = nested(&runs, "console=ttyAMA0 rdinit=/init quiet kvm-arm.mode=nvhe", "nvhe");
    assert!(output.contains("=== kvm 6."), "the outer guest did not start its init:\n{output}");
    assert!(output.contains("Hyp mode initialized successfully"), "KVM is not in nVHE mode:\n{output}");
    let all = guests(&output);
    assert_eq!(all.len(), 1, "runs that ended:\n{output}");
    find(&all, "4k").expect_exit_ok().expect("ktests", &[("failed", "0")]).expect_memory_service();
}
