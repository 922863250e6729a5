//! dispatch intake service
