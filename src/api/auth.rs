//! API keys: the `X-API-Key` header (REST) and `x-api-key` metadata (gRPC),
//! enforced when `ENABLE_API_KEYS` is on. Keys come from a file (one per
//! line; blank lines and `#` comments ignored), are held only as SHA-256
//! digests, compared in constant time, and reloaded when the file changes.
//! No key is ever logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Why the key file could not be used at startup.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("cannot read the API key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no key.
    #[error("API keys are enabled but {0} holds no key")]
    Empty(PathBuf),
}

#[derive(Default)]
struct Loaded {
    digests: Vec<[u8; 32]>,
    stamp: Option<(SystemTime, u64)>,
}

/// The key set (cheap to clone). Disabled: every request passes.
#[derive(Clone)]
pub struct ApiKeys {
    path: Option<Arc<PathBuf>>,
    loaded: Arc<RwLock<Loaded>>,
}

impl ApiKeys {
    /// Keys off: every endpoint is open.
    pub fn disabled() -> ApiKeys {
        ApiKeys {
            path: None,
            loaded: Arc::default(),
        }
    }

    /// Keys on, read from `path`. Fails when the file cannot be read or
    /// holds no key (the service must not start open by mistake).
    pub fn from_file(path: &Path) -> Result<ApiKeys, KeyFileError> {
        let keys = ApiKeys {
            path: Some(Arc::new(path.to_path_buf())),
            loaded: Arc::default(),
        };
        let count = keys.reload()?;
        if count == 0 {
            return Err(KeyFileError::Empty(path.to_path_buf()));
        }
        tracing::info!(keys = count, file = %path.display(), "API keys loaded");
        Ok(keys)
    }

    /// True when keys are enforced.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// Checks a presented key: `Ok` when keys are off or the key is known.
    pub fn check(&self, presented: Option<&[u8]>) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let key = match presented.map(trim) {
            Some(k) if !k.is_empty() => k,
            _ => return Err(ApiError::MissingKey),
        };
        let digest: [u8; 32] = Sha256::digest(key).into();
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        // Every digest is compared, with no early exit.
        let mut found = subtle::Choice::from(0);
        for d in &loaded.digests {
            found |= d.ct_eq(&digest);
        }
        if bool::from(found) {
            Ok(())
        } else {
            Err(ApiError::InvalidKey)
        }
    }

    /// Re-reads the file if its modification time or size changed; returns
    /// the number of keys now held. A file that cannot be read keeps the
    /// previous keys (logged).
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let Some(path) = self.path.as_deref() else {
            return Ok(0);
        };
        let read_err = |source| KeyFileError::Read {
            path: path.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.stamp == Some(stamp) {
                return Ok(loaded.digests.len());
            }
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let digests = parse_keys(&text);
        let count = digests.len();
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        let changed = loaded.stamp.is_some();
        *loaded = Loaded {
            digests,
            stamp: Some(stamp),
        };
        if changed {
            tracing::info!(keys = count, "API key file changed: keys reloaded");
            if count == 0 {
                tracing::warn!("the API key file holds no key: every protected request is refused");
            }
        }
        Ok(count)
    }

    /// Polls the key file every `every` until the runtime stops.
    pub fn watch(&self, every: Duration) {
        if !self.enabled() {
            return;
        }
        let keys = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let k = keys.clone();
                let res = tokio::task::spawn_blocking(move || k.reload()).await;
                if let Ok(Err(e)) = res {
                    tracing::warn!(error = %e, "API key file not reloaded; keeping the previous keys");
                }
            }
        });
    }
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// The digests of the keys in a key file's text.
fn parse_keys(text: &str) -> Vec<[u8; 32]> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Sha256::digest(l.as_bytes()).into())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "# comment\n\n  alpha  \nbeta\n").unwrap();
        let keys = ApiKeys::from_file(&path).unwrap();
        assert_eq!(keys.check(Some(b"alpha")), Ok(()));
        assert_eq!(keys.check(Some(b"beta")), Ok(()));
        assert_eq!(keys.check(Some(b"gamma")), Err(ApiError::InvalidKey));
        assert_eq!(keys.check(Some(b"# comment")), Err(ApiError::InvalidKey));
        assert_eq!(keys.check(None), Err(ApiError::MissingKey));
        assert_eq!(keys.check(Some(b"  ")), Err(ApiError::MissingKey));
        std::fs::write(&path, "gamma-longer-key\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        assert_eq!(keys.check(Some(b"gamma-longer-key")), Ok(()));
        assert_eq!(keys.check(Some(b"alpha")), Err(ApiError::InvalidKey));
        assert!(ApiKeys::disabled().check(None).is_ok());
    }

    #[test]
    fn an_empty_or_missing_file_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        assert!(matches!(
            ApiKeys::from_file(&path),
            Err(KeyFileError::Read { .. })
        ));
        std::fs::write(&path, "# only a comment\n").unwrap();
        assert!(matches!(
            ApiKeys::from_file(&path),
            Err(KeyFileError::Empty(_))
        ));
    }
}
