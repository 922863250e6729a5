//! All five services in one process (embedded mode) and the per-service binaries
