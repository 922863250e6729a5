//! dispatch notification service
