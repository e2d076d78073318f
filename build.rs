//! Links GCC's unwinder statically on Linux/glibc, so the release binary's
//! only dynamic dependency is glibc itself (as `gcc -static-libgcc` does).
//!
//! Rust's std asks for `-lgcc_s`; a linker script named `libgcc_s.so` placed
//! first on the search path answers that request with the static
//! `libgcc_eh.a` instead. Skipped when that archive is missing, on other
//! targets, and for fully static (`crt-static`) builds, which already do this.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_crt {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let found = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| Path::new(p).is_absolute() && Path::new(p).exists());
    let Some(_) = found else {
        println!("cargo:warning=libgcc_eh.a not found; the binary will link libgcc_s dynamically");
        return;
    };
    let out = var("OUT_DIR");
    let script = Path::new(&out).join("libgcc_s.so");
    if std::fs::write(&script, "INPUT(-lgcc_eh)\n").is_ok() {
        println!("cargo:rustc-link-search=native={out}");
    }
}
