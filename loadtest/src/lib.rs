//! Load-test harness
