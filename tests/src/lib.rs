//! Cross-service integration and end-to-end tests
