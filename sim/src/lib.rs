//! Swarm simulator (stub; being written).
