//! Shared by the harness's integration tests: a tiny scenario on the built-in map.

#![allow(dead_code)]

use std::path::PathBuf;

/// A few simulated minutes on the built-in map at 300x: about 25 calls in 2 s of real time,
/// short on-scene times so the drain finishes in a few real seconds.
pub const TINY: &str = r#"
name = "tiny"
seed = 7

[map]
builtin = true

[clock]
scale = 300.0

[calls]
peak_per_hour = 150.0
duration_s = 600.0
drain_s = 3600.0

[calls.category_mix]
violent_crime = 1
theft = 2
traffic_collision = 3
noise = 2

[officers]
per_district = 4
on_duty_share = 0.5

[terminal]
ack_delay_s = [5.0, 15.0]
speed_kmh = 30.0
circuity = 1.4
gps_interval_s = 10.0
on_scene_s = [60.0, 180.0]

[terminal.dispositions]
criminal_case = 0.3
administrative_case = 0.2
false_alarm = 0.1
referred = 0.1

[target]
response_s = 300.0
share = 0.5
"#;

/// A fresh directory for one test's files.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dispatch-loadtest-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
