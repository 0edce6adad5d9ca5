//! A process-wide setting for training on the CPU: keep freed memory in the process.
//!
//! libtorch allocates every CPU tensor with `posix_memalign`. glibc serves large blocks (above
//! its mmap threshold: 128 KiB, adaptive up to 32 MiB) with fresh `mmap`s and unmaps them when
//! they are freed, so each training step faults in and zero-fills its activations again. For the
//! CASIA-SURF student at B = 64 on 2 threads that is ~2.1 million page faults and ~7.8 s of
//! kernel time per 4-step run. [`keep_freed_memory`] turns glibc's mmap path off (glibc still
//! falls back to it for a request its heap cannot grow to) and stops it trimming the heap, so
//! freed blocks are reused by the next step: 0.57 million faults, ~2.1 s of kernel time, median
//! step 8455 -> 7193 ms (docs/performance.md, CPU "Run 5"). It helps the thread that allocates
//! the tensors (the training thread, which allocates from glibc's main heap); other threads'
//! heaps hold at most 64 MiB, so their larger blocks are still mmapped. The cost: the process
//! keeps its peak heap until it exits (peak resident memory +6 % there).
//!
//! It changes the C allocator of the whole process, so only a program's `main` should call it,
//! once, early; `mmanet` (the app) does unless `MMANET_KEEP_FREED_MEMORY=0`.
//!
//! ```
//! // At the start of a CPU training program:
//! let applied = mmanet_train::cpu_memory::keep_freed_memory();
//! assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
//! ```

/// Makes glibc keep freed memory for reuse (no `mmap` per large block, no heap trimming).
/// Returns whether the setting was applied: `false` on other C libraries (nothing to do) or if
/// glibc refused it. Idempotent.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() -> bool {
    // glibc's largest trim threshold; any value above the heap sizes we reach works.
    const NEVER_TRIM: libc::c_int = libc::c_int::MAX;
    // SAFETY: `mallopt` only changes allocator parameters under glibc's own lock; it takes no
    // pointers and is documented as callable at any time.
    #[allow(unsafe_code)]
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, NEVER_TRIM) == 1
    };
    if ok {
        tracing::debug!("glibc malloc: mmap off, trimming off (freed memory stays in the process)");
    } else {
        tracing::warn!("glibc mallopt refused M_MMAP_MAX / M_TRIM_THRESHOLD");
    }
    ok
}

/// Other platforms: nothing to do (returns `false`).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    false
}
