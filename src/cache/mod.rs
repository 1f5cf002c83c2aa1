//! The cache's building blocks: a concurrent in-memory map bounded by bytes
//! with least-recently-used eviction, and a bounded directory of atomically
//! written, checksummed records in a portable format, and the Redis tier
//! replicas share ([`shared`]). The engine decides what goes in them
//! (uploads and forecasts per handle, rendered plots).

pub mod disk;
pub mod memory;
pub mod private;
pub mod shared;

pub use disk::{DiskStore, Record};
pub use memory::{MemoryCache, Weigh};

/// Errors of the cache layer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file system refused.
    #[error("cache I/O error: {0}")]
    Io(String),
    /// A record that cannot be trusted (truncated, damaged or foreign).
    #[error("corrupt cache record {path}: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that cannot name a file.
    #[error("invalid cache key {0:?}")]
    BadKey(String),
}
