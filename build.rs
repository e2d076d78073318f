//! Two build-time facts.
//!
//! The browser tests: when Chromium is installed (or `CI` is set, where it
//! must be), the cfg `browser_tests` is set and `MESYNC_CHROMIUM` names the
//! executable; without them those tests are reported as ignored, with the
//! reason, instead of passing without running. Installing Chromium later
//! needs a rebuild (`touch build.rs`).
//!
//! The link: GCC's unwinder is linked statically on Linux/glibc, so the
//! release binary's only dynamic dependency is glibc itself (as
//! `gcc -static-libgcc` does). Rust's std asks for `-lgcc_s`; a linker script
//! named `libgcc_s.so` placed first on the search path answers that request
//! with the static `libgcc_eh.a` instead. Skipped when that archive is
//! missing, on other targets, and for fully static (`crt-static`) builds,
//! which already do this.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    browser_tests();
    static_unwinder();
}

/// Whether the environment says this is a CI run (`CI=true`, `CI=1`, ...).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Chromium at /usr/bin/chromium or under one of its names on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)));
    std::iter::once(PathBuf::from("/usr/bin/chromium"))
        .chain(on_path)
        .find(|p| p.is_file())
}

fn browser_tests() {
    println!("cargo:rustc-check-cfg=cfg(browser_tests)");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=PATH");
    let chromium = find_chromium();
    if let Some(exe) = &chromium {
        println!("cargo:rustc-env=MESYNC_CHROMIUM={}", exe.display());
    }
    if chromium.is_some() || in_ci() {
        println!("cargo:rustc-cfg=browser_tests");
    }
}

fn static_unwinder() {
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
