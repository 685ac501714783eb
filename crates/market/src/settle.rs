//! Settlement (stub; being written).
