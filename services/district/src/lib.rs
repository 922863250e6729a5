//! dispatch district service
