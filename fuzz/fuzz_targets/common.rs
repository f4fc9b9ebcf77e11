//! Shared by the fuzz targets: an allocator that aborts (a crash libFuzzer records, with the
//! input) on any single allocation over the target's stated bound, whatever sanitizer the
//! build has (libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks, and the
//! stable toolchain builds with `-s none`); and a scratch directory for readers that take paths.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;

pub struct Capped<const MAX: usize>;

fn over(size: usize, max: usize) -> ! {
    eprintln!("fuzz: one allocation of {size} bytes, over the bound of {max} bytes");
    std::process::abort()
}

unsafe impl<const MAX: usize> GlobalAlloc for Capped<MAX> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX {
            over(layout.size(), MAX);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX {
            over(layout.size(), MAX);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX {
            over(new_size, MAX);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A per-process scratch directory (kept for the run; files are overwritten per input).
pub fn scratch() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs where there is one: a disk-backed /tmp can take milliseconds per write.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let d = base.join(format!("llmtool-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

/// Writes `data` to `name` in the scratch directory and returns the path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("scratch write");
    p
}

/// A fuzz target whose allocations are capped at `$max` bytes each: `target!(MAX, |data| …)`
/// over the raw bytes, or `target!(MAX, text |text| …)` over the inputs that are UTF-8.
#[macro_export]
macro_rules! target {
    ($max:expr, |$data:ident| $body:block) => {
        #[global_allocator]
        static ALLOC: common::Capped<{ $max }> = common::Capped;
        libfuzzer_sys::fuzz_target!(|$data: &[u8]| $body);
    };
    ($max:expr, text |$text:ident| $body:block) => {
        $crate::target!($max, |data| {
            let Ok($text) = std::str::from_utf8(data) else { return };
            $body
        });
    };
}
