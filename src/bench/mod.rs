//! Measurement: one measured private inference ([`run`]), sweeps of them ([`sweep`]), the
//! price of ReLUs alone ([`relu`]) and of plain inference ([`plaintime`]), what the process
//! used meanwhile ([`usage`]), and their console tables. What they measure is written in the
//! [`crate::results`] schema.

pub mod plaintime;
pub mod relu;
pub mod run;
pub mod sweep;
pub mod table;
pub mod usage;

/// Names the global rayon pool's workers `pibench-rayonN`, as the parties' own threads are named
/// (`pibench-server`, `pibench-client`, `pibench-send`, ...), so that `perf`, `top -H` and
/// panic messages tell them apart. Call before anything uses the pool; once it exists (or a
/// second time) this does nothing. The worker count stays rayon's choice (`RAYON_NUM_THREADS`,
/// else one per CPU).
pub fn name_pool_threads() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("pibench-rayon{i}"))
        .build_global();
}

/// Starts `f` on a new thread called `name` (Linux shows 15 bytes of it), panicking as
/// `std::thread::spawn` does if the system cannot start one.
pub(crate) fn spawn_named<T, F>(name: &str, f: F) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("failed to spawn thread")
}

#[cfg(test)]
mod tests {
    #[test]
    fn spawned_threads_carry_their_name() {
        let name = super::spawn_named("pibench-test", || {
            std::thread::current().name().map(str::to_owned)
        })
        .join()
        .unwrap();
        assert_eq!(name.as_deref(), Some("pibench-test"));
    }
}
