//! dispatch geo-router service
