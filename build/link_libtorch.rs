//! Build script shared by every crate that links libtorch into a binary, test, bench or example.
//!
//! Two problems are fixed here (see README, "libtorch"):
//! 1. rustc gives binaries no RUNPATH, so nothing would start without `LD_LIBRARY_PATH`.
//!    We add `RUNPATH=<libtorch>/lib:$ORIGIN` (`--enable-new-dtags`: `LD_LIBRARY_PATH` still wins
//!    elsewhere); `$ORIGIN`, the binary's own folder, is where `cargo xtask bundle` puts the
//!    libtorch libraries, so a bundled binary starts on a machine without libtorch.
//! 2. rustc links with `--as-needed`, which drops `libtorch_cuda.so` because nothing references
//!    its symbols; then `tch::Cuda::is_available()` is false even on a GPU machine. With the
//!    crate feature `cuda` (or `MMANET_LINK_CUDA=1`) the CUDA libraries are kept as NEEDED.
//!
//! The libtorch directory comes from torch-sys's `links = "tch"` metadata
//! (`DEP_TCH_LIBTORCH_LIB`), so torch-sys must be a direct dependency of the crate.

#![allow(clippy::print_stdout)] // cargo reads build-script instructions from stdout

fn main() {
    println!("cargo:rerun-if-env-changed=MMANET_LINK_CUDA");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags,-rpath,{lib}:$ORIGIN");
    } else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: binaries get no RUNPATH");
    }
    let cuda_feature = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    let cuda_env = std::env::var("MMANET_LINK_CUDA").is_ok_and(|v| v == "1");
    if cuda_feature || cuda_env {
        // The CPU-only install lacks cuBLAS/cuDNN: tolerate their absence at link time; the
        // GPU machine's torch install provides them at run time.
        println!(
            "cargo:rustc-link-arg=-Wl,--allow-shlib-undefined,--no-as-needed,-ltorch_cuda,-lc10_cuda,-ltorch,--as-needed"
        );
    }
}
