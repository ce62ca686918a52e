//! Links the EL0 programs at the task load address with `user/linker.ld`.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=../linker.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/../linker.ld");
}
