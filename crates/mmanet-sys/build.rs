//! Compiles `cpp/c10d_shim.cpp` against the libtorch torch-sys links (its `links = "tch"`
//! metadata, `DEP_TCH_LIBTORCH_LIB`; `LIBTORCH` as a fallback) and Debian's gloo headers, which
//! the torch wheel lacks (`MMANET_GLOO_INCLUDE`, set in `.cargo/config.toml` to the `.gloo`
//! link that `cargo xtask setup` makes). Also gives this crate's tests and examples the
//! libtorch RUNPATH, as `build/link_libtorch.rs` does for the other crates.

#![allow(clippy::print_stdout)] // cargo reads build-script instructions from stdout

use std::path::{Path, PathBuf};

fn libtorch_lib() -> PathBuf {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        return PathBuf::from(lib);
    }
    match std::env::var("LIBTORCH") {
        Ok(root) => Path::new(&root).join("lib"),
        Err(_) => panic!(
            "mmanet-sys: neither DEP_TCH_LIBTORCH_LIB (torch-sys) nor LIBTORCH is set: \
             run `cargo xtask setup`"
        ),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=cpp/c10d_shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=MMANET_GLOO_INCLUDE");

    let lib = libtorch_lib();
    let root = lib.parent().expect("libtorch lib folder has a parent").to_path_buf();
    let include = root.join("include");
    let c10d = include.join("torch/csrc/distributed/c10d/ProcessGroupGloo.hpp");
    if !c10d.is_file() {
        panic!(
            "mmanet-sys: libtorch at {} has no c10d headers ({})",
            root.display(),
            c10d.display()
        );
    }

    let gloo = std::env::var_os("MMANET_GLOO_INCLUDE").map(PathBuf::from);
    let gloo = match gloo {
        Some(dir) if dir.join("gloo/config.h").is_file() => dir,
        Some(dir) => panic!(
            "mmanet-sys: gloo headers not found at {}: run `cargo xtask setup`",
            dir.display()
        ),
        None => panic!(
            "mmanet-sys: gloo headers not found (MMANET_GLOO_INCLUDE is not set; \
             .cargo/config.toml sets it to .gloo/include): run `cargo xtask setup`"
        ),
    };
    println!("cargo:rerun-if-changed={}", gloo.join("gloo/config.h").display());

    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo)
        .define("USE_C10D_GLOO", None)
        // the PyPI wheel is built with the C++11 ABI, as torch-sys's own C++ helper assumes
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        // the c10d and gloo headers warn about unused parameters and the like; not ours
        .warnings(false)
        .file("cpp/c10d_shim.cpp")
        .compile("mmanet_c10d_shim");

    // c10d lives in libtorch_cpu (linking `torch` would pull libtorch_cuda on a GPU install
    // only through torch-sys's own choice); torch-sys adds the search path.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags,-rpath,{}", lib.display());
}
