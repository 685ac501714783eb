//! The chain port (stub; being written).
