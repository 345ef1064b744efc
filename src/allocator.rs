//! The memory allocator of the binaries and benchmarks: mimalloc, keeping the pages it frees.
//!
//! A forward pass frees and re-allocates the same activation buffers over and over. mimalloc
//! by default hands freed pages back to the system a second after they are freed, so later
//! allocations fault every page in again: a toy-ioi ACDC run took ≈ 45,000 page faults (6 % of its CPU time in
//! the kernel), and when the runs of a sweep share one process their faults contend for the
//! process's memory map (the kernel time doubled). [`Allocator`] is mimalloc with that purge
//! turned off: freed pages stay with the process and are reused by the next allocation
//! (≈ 500 faults for the same run). The peak resident memory is that of the largest live set,
//! as before.
//!
//! It also asks for no transparent huge pages: mimalloc would advise the kernel to back its
//! memory with 2 MiB pages, and each first touch of one zeroes (and may compact for) the whole
//! page. Gradient attribution spent 17 % of its time there (0.8–1.1 s of system time per
//! benchmark run against 0.2 s without; user time unchanged).
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, value 15 in versions 2 and 3): milliseconds before freed memory is
/// returned to the system, −1 for never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's `mi_option_allow_thp` (value 43 in version 3, the one `libmimalloc-sys` builds by
/// default): whether it asks for transparent huge pages on the memory it maps.
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// mimalloc, told on first use to keep freed pages (see the module docs).
pub struct Allocator;

impl Allocator {
    #[inline]
    fn configure() {
        if !CONFIGURED.load(Ordering::Relaxed) {
            // Setting an option neither allocates nor fails; a race sets it twice, harmlessly.
            unsafe {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
                libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
            }
            CONFIGURED.store(true, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc's allocator, which upholds the
// `GlobalAlloc` contract; `configure` only sets an option.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::configure();
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::configure();
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_allocation_turns_purging_off() {
        let layout = Layout::from_size_align(64, 8).unwrap();
        unsafe {
            // The option number names the purge delay: its default is 1000 ms (mimalloc 3's
            // `options.c`; this test binary's own allocator is plain mimalloc, and nothing
            // else sets the option).
            if !CONFIGURED.load(Ordering::Relaxed) {
                assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            }
            let p = Allocator.alloc(layout);
            assert!(!p.is_null());
            Allocator.dealloc(p, layout);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), -1);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP), 0);
        }
    }
}
