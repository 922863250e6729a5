//! Tracing setup, shutdown signals and the gRPC serving scaffold shared by every service
