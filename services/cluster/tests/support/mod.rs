//! What the cluster tests share.

use std::time::{Duration, Instant};

/// The bound of a liveness check for what takes milliseconds to a few seconds: generous for a
/// loaded 2-core test machine, and far below the minute-long TTLs, leases and reconcile
/// periods that tests set when only an announcement may explain what they see.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Waits until `check` holds, polling every 20 ms; panics after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {within:?}: {what}");
}
