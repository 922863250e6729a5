//! dispatch case-squad service
