//! `cpu_memory::keep_freed_memory` on the main thread (this test has no harness: the libtest
//! harness would run it on a spawned thread, whose glibc arena caps heaps at 64 MiB).
#![allow(clippy::print_stderr)]

/// Minor page faults of the calling thread so far (`/proc/thread-self/stat`, field 10).
///
/// Reads into a stack buffer: a heap allocation here would be carved out of the freed block
/// the test wants reused and make the next block not fit (whether that happens depends on
/// what else the process has allocated, e.g. whether libtorch happens to be linked).
fn thread_minor_faults() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut f = std::fs::File::open("/proc/thread-self/stat").expect("proc stat");
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("proc stat") {
            0 => break,
            k => n += k,
        }
    }
    let stat = std::str::from_utf8(&buf[..n]).expect("ascii");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    // Fields after `(comm)`: state(3) ppid pgrp session tty_nr tpgid flags minflt(10).
    after_comm.split_whitespace().nth(7).expect("minflt").parse().expect("number")
}

/// Faults taken by writing a fresh 64 MiB block, the size of a B = 64 activation map
/// (`vec![1u8; n]` writes every page).
fn faults_of_a_large_block() -> u64 {
    let before = thread_minor_faults();
    let block = vec![1u8; 64 << 20];
    std::hint::black_box(&block);
    let faults = thread_minor_faults() - before;
    drop(block);
    faults
}

fn main() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(!mmanet_train::cpu_memory::keep_freed_memory());
        return;
    }
    // glibc's default: the block is mmapped and unmapped on free, so each one faults again
    // (16384 faults of 4 KiB, fewer with transparent huge pages).
    let default_first = faults_of_a_large_block();
    let default_second = faults_of_a_large_block();
    assert!(mmanet_train::cpu_memory::keep_freed_memory());
    // With the setting the block comes from the heap and stays there once freed.
    let kept_first = faults_of_a_large_block();
    let kept_second = faults_of_a_large_block();
    eprintln!(
        "faults per 64 MiB block: default {default_first}, {default_second}; \
         kept {kept_first}, {kept_second}"
    );
    assert!(default_second * 2 > default_first, "default allocator reused the block");
    assert!(kept_second * 20 < kept_first.max(100), "freed block was not reused");
}
