//! Threads for independent runs: several runs at once (a sweep's points, scrubbing's seeds),
//! each on its own thread, instead of one run whose small matrix products share the cores.
//!
//! candle's matrix products and parallel kernels size their thread pools from
//! `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` when they first start, so the threads per run
//! are settled at the start of `main` ([`set_threads_per_run`]) and the runs themselves go to
//! a pool of their own ([`pool`]). Results do not depend on either.

use crate::error::{Error, Result};

/// Settle the per-run threads before any tensor work: candle's matrix products and the other
/// parallel kernels read `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS`, so runs that share the
/// machine each use `threads` of its cores instead of all of them. Results do not depend on it.
///
/// Call it at the start of `main`, before other threads exist.
pub fn set_threads_per_run(threads: usize) {
    let t = threads.max(1).to_string();
    // Only at start-up, before any other thread exists (see above).
    std::env::set_var("RAYON_NUM_THREADS", &t);
    std::env::set_var("CANDLE_NUM_THREADS", &t);
}

/// The number of cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The threads the user asked for: `RAYON_NUM_THREADS` when set to a positive number, else
/// every core. Read it before [`set_threads_per_run`] changes it.
pub fn requested() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(available_cores)
}

/// A pool of `n` threads (at least one) named `{name}-{i}`, for runs that go in parallel.
pub fn pool(n: usize, name: &'static str) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| Error::input(format!("cannot start {n} threads: {e}")))
}
