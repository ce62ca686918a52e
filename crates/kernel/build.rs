//! Links the kernel binary with `linker.ld` when building for the bare-metal
//! target (host builds, the stub and its tests, are untouched), and tells
//! `src/programs.rs` where the EL0 programs were built (`make` builds them
//! first: `user/programs` with the `el0` profile, `user/memsvc` with the
//! `service` profile; the IPC benchmark pair also soft-float).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // Paths are relative to this package (crates/kernel).
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=src/arch/aarch64/boot.s");
    println!("cargo:rerun-if-changed=src/arch/aarch64/vectors.s");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    if target.starts_with("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-relax");
        let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{dir}/../../target"));
        println!("cargo:rustc-env=FOLIO_EL0_DIR={target_dir}/aarch64-unknown-none");
        println!("cargo:rustc-env=FOLIO_EL0_SOFT_FLOAT_DIR={target_dir}/aarch64-unknown-none-softfloat");
    }
}
