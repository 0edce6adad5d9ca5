//! Compiles `cpp/c10d_shim.cpp` against the libtorch torch-sys links (its `links = "tch"`
//! metadata, `DEP_TCH_LIBTORCH_LIB`; `LIBTORCH` as a fallback) and Debian's gloo headers, which
//! the torch wheel lacks (`MMANET_GLOO_INCLUDE`, set in `.cargo/config.toml` to the `.gloo`
//! link that `cargo xtask setup` makes). Also gives this crate's tests and examples the
//! libtorch RUNPATH, as `build/link_libtorch.rs` does for the other crates.
//!
//! On a CUDA install (`cargo xtask setup --cuda`: NCCL's header present) the shim is also
//! compiled with `ProcessGroupNCCL` for CUDA tensors and the `at::cuda::CUDAGraph` wrapper,
//! linked with libtorch_cuda, and the crate gets `cfg(mmanet_nccl)`; on the CPU install
//! nothing changes (both then answer "not built").

#![allow(clippy::print_stdout)] // cargo reads build-script instructions from stdout

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

const SHIM: &str = "cpp/c10d_shim.cpp";
const LIB: &str = "mmanet_c10d_shim";

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
    println!("cargo:rerun-if-changed={SHIM}");
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

    let cuda = Cuda::detect(&lib);
    let mut build = cc::Build::new();
    if let Some(c) = &cuda {
        for dir in &c.includes {
            build.include(dir);
        }
        build
            .define("USE_C10D_NCCL", None)
            .define("MMANET_WITH_NCCL", None)
            .define("MMANET_WITH_CUDA", None);
    }
    build
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
        .file(SHIM);
    let mut headers = vec![c10d, gloo.join("gloo/config.h")];
    headers.extend(cuda.iter().map(|c| c.nccl_header.clone()));
    compile_cached(&build, &headers);

    // c10d lives in libtorch_cpu (ProcessGroupNCCL in libtorch_cuda); `torch` would pull
    // libtorch_cuda on a CUDA install even without NCCL.
    println!("cargo::rustc-check-cfg=cfg(mmanet_nccl)");
    println!("cargo:rustc-link-search=native={}", lib.display());
    if let Some(c) = &cuda {
        println!("cargo:rustc-cfg=mmanet_nccl");
        println!("cargo:rustc-link-search=native={}", c.cudart_dir.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
        // A library, not a link argument: link arguments reach this crate's own binaries only,
        // and every binary that links the shim needs the CUDA runtime (the wheel has no
        // unversioned libcudart.so, hence verbatim).
        println!("cargo:rustc-link-lib=dylib:+verbatim=libcudart.so.13");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", c.cudart_dir.display());
    }
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags,-rpath,{}", lib.display());
}

/// What the NCCL backend needs from a CUDA install of the torch wheel (`libtorch_cuda.so`
/// beside `libtorch_cpu.so`): `nccl.h` (the `nvidia-nccl-cu13` package), the CUDA runtime
/// headers and `crt/` (`nvidia-cuda-runtime`, `nvidia-cuda-crt`), `nv/target`
/// (`nvidia-cuda-cccl`), and `libcudart.so.13`. The CPU install (the same wheel without its
/// dependencies) has no `nccl.h`: no NCCL then.
struct Cuda {
    includes: Vec<PathBuf>,
    nccl_header: PathBuf,
    cudart_dir: PathBuf,
}

impl Cuda {
    fn detect(lib: &Path) -> Option<Cuda> {
        // <install>/torch/lib -> <install>/nvidia. The PyPI wheel always carries
        // libtorch_cuda.so; NCCL's header comes only with the full install's dependencies.
        let nvidia = lib.parent()?.parent()?.join("nvidia");
        let nccl = nvidia.join("nccl/include/nccl.h");
        println!("cargo:rerun-if-changed={}", nccl.display());
        if !lib.join("libtorch_cuda.so").is_file() || !nccl.is_file() {
            return None;
        }
        let cu13 = nvidia.join("cu13").join("include");
        let need = [
            (cu13.join("cuda_runtime_api.h"), "nvidia-cuda-runtime"),
            (cu13.join("crt/host_config.h"), "nvidia-cuda-crt"),
            (cu13.join("cccl/nv/target"), "nvidia-cuda-cccl"),
        ];
        for (file, package) in &need {
            if !file.exists() {
                panic!(
                    "mmanet-sys: the CUDA libtorch at {} lacks {} (PyPI `{package}`): rerun \
                     `cargo xtask setup --cuda --force`",
                    lib.display(),
                    file.display()
                );
            }
        }
        Some(Cuda {
            includes: vec![nvidia.join("nccl/include"), cu13.clone(), cu13.join("cccl")],
            nccl_header: nvidia.join("nccl/include/nccl.h"),
            cudart_dir: nvidia.join("cu13/lib"),
        })
    }
}

/// Compiles the shim, or reuses the archive an earlier run of this script made with the same
/// source, compiler, flags and headers. cargo runs the script once per tool and profile (build
/// and test, clippy, doc: three times in `cargo xtask ci`), and each compile takes 25 s or more
/// on 2 cores; the archive is kept under `<target>/<profile>/mmanet-sys-shim/<key>/`.
fn compile_cached(build: &cc::Build, headers: &[PathBuf]) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let compiler = build.get_compiler();
    let mut key = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(SHIM).expect("reading the shim").hash(&mut key);
    compiler.path().hash(&mut key);
    compiler.args().hash(&mut key);
    let version = std::process::Command::new(compiler.path()).arg("--version").output();
    version.map(|o| o.stdout).unwrap_or_default().hash(&mut key);
    for h in headers {
        h.hash(&mut key);
        let meta = std::fs::metadata(h).ok();
        meta.as_ref().map(|m| m.len()).hash(&mut key);
        meta.and_then(|m| m.modified().ok()).hash(&mut key);
    }
    let archive = format!("lib{LIB}.a");
    let cache = out
        .ancestors()
        .nth(3)
        .map(|profile| profile.join("mmanet-sys-shim").join(format!("{:016x}", key.finish())));
    let cached = cache.as_ref().map(|c| c.join(&archive)).filter(|a| a.is_file());
    match cached {
        Some(a) => {
            std::fs::copy(&a, out.join(&archive)).expect("copying the cached shim");
            println!("cargo:rustc-link-search=native={}", out.display());
            println!("cargo:rustc-link-lib=static={LIB}");
            // what cc prints for a C++ build on Linux
            println!("cargo:rustc-link-lib=stdc++");
        }
        None => {
            build.compile(LIB);
            if let Some(dir) = cache {
                // Publish with a rename, so a concurrent run never sees half an archive.
                let tmp = dir.join(format!("{archive}.{}", std::process::id()));
                let stored = std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::copy(out.join(&archive), &tmp))
                    .and_then(|_| std::fs::rename(&tmp, dir.join(&archive)));
                if let Err(e) = stored {
                    println!("cargo:warning=mmanet-sys: not caching the shim: {e}");
                }
            }
        }
    }
}
