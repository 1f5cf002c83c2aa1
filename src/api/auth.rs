//! API keys: the `X-API-Key` header (REST) and `x-api-key` metadata (gRPC),
//! enforced when `ENABLE_API_KEYS` is on. Keys come from a file (one per
//! line; blank lines and `#` comments ignored), are held only as SHA-256
//! digests, compared in constant time, and reloaded when the file's content
//! changes (its SHA-256 is compared on every check interval, so a same-size
//! replacement with a restored modification time is still seen). No key is
//! ever logged.
//!
//! An optional second file lists admin keys (same format): when it is
//! given, cache actions that touch other people's uploads (`flush`, `save`,
//! `load`, and `delete` of a handle the caller did not create) need one of
//! them ([`Caller`], checked in `ops.rs`). Admin keys are API keys too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Why a key file could not be used at startup.
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
    /// SHA-256 of the file's bytes when last read.
    content: Option<[u8; 32]>,
}

/// One key file and the digests of its keys, reloaded when its content
/// changes.
struct KeyFile {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl KeyFile {
    fn open(path: &Path) -> Result<KeyFile, KeyFileError> {
        let file = KeyFile {
            path: path.to_path_buf(),
            loaded: RwLock::default(),
        };
        if file.reload()? == 0 {
            return Err(KeyFileError::Empty(path.to_path_buf()));
        }
        Ok(file)
    }

    /// Re-reads the file; the digests are replaced only when its content
    /// (SHA-256 of its bytes) changed. Returns the number of keys held.
    fn reload(&self) -> Result<usize, KeyFileError> {
        let bytes = std::fs::read(&self.path).map_err(|source| KeyFileError::Read {
            path: self.path.clone(),
            source,
        })?;
        let content: [u8; 32] = Sha256::digest(&bytes).into();
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.content == Some(content) {
                return Ok(loaded.digests.len());
            }
        }
        let digests = parse_keys(&String::from_utf8_lossy(&bytes));
        let count = digests.len();
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        let changed = loaded.content.is_some();
        *loaded = Loaded {
            digests,
            content: Some(content),
        };
        if changed {
            tracing::info!(keys = count, file = %self.path.display(), "key file changed: keys reloaded");
            if count == 0 {
                tracing::warn!(file = %self.path.display(), "the key file holds no key: requests needing one are refused");
            }
        }
        Ok(count)
    }

    /// True when `digest` is one of the keys (every digest compared, no
    /// early exit).
    fn holds(&self, digest: &[u8; 32]) -> bool {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let mut found = subtle::Choice::from(0);
        for d in &loaded.digests {
            found |= d.ct_eq(digest);
        }
        bool::from(found)
    }
}

/// Who sent a request, as far as cache permissions go: an opaque digest of
/// the presented key (never the key itself; not the digest used to check
/// it either) and whether it is an admin key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Caller {
    owner: Option<[u8; 32]>,
    admin: bool,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("keyed", &self.owner.is_some())
            .field("admin", &self.admin)
            .finish()
    }
}

impl Caller {
    /// The identity recorded as an upload's creator (`None`: no key sent).
    pub fn owner(&self) -> Option<&[u8; 32]> {
        self.owner.as_ref()
    }

    /// True when the caller presented an admin key, or no admin list is
    /// configured (then every caller may manage the cache, as in the
    /// reference).
    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

/// The key set (cheap to clone). Disabled: every request passes.
#[derive(Clone)]
pub struct ApiKeys {
    keys: Option<Arc<KeyFile>>,
    admins: Option<Arc<KeyFile>>,
}

impl ApiKeys {
    /// Keys off: every endpoint is open.
    pub fn disabled() -> ApiKeys {
        ApiKeys {
            keys: None,
            admins: None,
        }
    }

    /// Keys on, read from `path`. Fails when the file cannot be read or
    /// holds no key (the service must not start open by mistake).
    pub fn from_file(path: &Path) -> Result<ApiKeys, KeyFileError> {
        let file = KeyFile::open(path)?;
        tracing::info!(keys = file.loaded.read().map(|l| l.digests.len()).unwrap_or(0), file = %path.display(), "API keys loaded");
        Ok(ApiKeys {
            keys: Some(Arc::new(file)),
            admins: None,
        })
    }

    /// Adds the admin key list read from `path` (same format; reloaded like
    /// the key file). Fails when the file cannot be read or holds no key.
    pub fn with_admin_file(self, path: &Path) -> Result<ApiKeys, KeyFileError> {
        let file = KeyFile::open(path)?;
        tracing::info!(file = %path.display(), "admin keys loaded: flush, save, load and deleting others' uploads need one");
        Ok(ApiKeys {
            admins: Some(Arc::new(file)),
            ..self
        })
    }

    /// True when keys are enforced.
    pub fn enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// True when an admin key list is configured.
    pub fn admin_required(&self) -> bool {
        self.admins.is_some()
    }

    /// Checks a presented key: `Ok` when keys are off or the key is known
    /// (an admin key is a key too).
    pub fn check(&self, presented: Option<&[u8]>) -> Result<(), ApiError> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        let key = match presented.map(trim) {
            Some(k) if !k.is_empty() => k,
            _ => return Err(ApiError::MissingKey),
        };
        let digest: [u8; 32] = Sha256::digest(key).into();
        let admin = self.admins.as_ref().is_some_and(|a| a.holds(&digest));
        if keys.holds(&digest) | admin {
            Ok(())
        } else {
            Err(ApiError::InvalidKey)
        }
    }

    /// The caller behind a presented key (checked or not: use after
    /// [`ApiKeys::check`]).
    pub fn caller(&self, presented: Option<&[u8]>) -> Caller {
        let key = presented.map(trim).filter(|k| !k.is_empty());
        let owner = key.map(|k| {
            let mut h = Sha256::new();
            h.update(b"glurpc upload owner\0");
            h.update(k);
            h.finalize().into()
        });
        let admin = match (&self.admins, key) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(k)) => a.holds(&Sha256::digest(k).into()),
        };
        Caller { owner, admin }
    }

    /// Re-reads the key files whose content changed; returns the number of
    /// (non-admin) keys now held. A file that cannot be read keeps the
    /// previous keys.
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        if let Some(a) = &self.admins {
            a.reload()?;
        }
        match &self.keys {
            Some(k) => k.reload(),
            None => Ok(0),
        }
    }

    /// Polls the key files every `every` until the runtime stops.
    pub fn watch(&self, every: Duration) {
        if self.keys.is_none() && self.admins.is_none() {
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
                    tracing::warn!(error = %e, "key file not reloaded; keeping the previous keys");
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
    fn a_same_size_replacement_with_its_old_mtime_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "alpha-key\n").unwrap();
        let keys = ApiKeys::from_file(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "bravo-key\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        assert_eq!(keys.check(Some(b"alpha-key")), Err(ApiError::InvalidKey));
        assert_eq!(keys.check(Some(b"bravo-key")), Ok(()));
    }

    #[test]
    fn admin_keys_are_keys_and_callers_carry_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (path, admin) = (dir.path().join("keys"), dir.path().join("admins"));
        std::fs::write(&path, "user\n").unwrap();
        std::fs::write(&admin, "boss\n").unwrap();
        let open = ApiKeys::from_file(&path).unwrap();
        assert!(
            open.caller(Some(b"user")).is_admin(),
            "no admin list: all may"
        );
        let keys = open.with_admin_file(&admin).unwrap();
        assert_eq!(keys.check(Some(b"boss")), Ok(()));
        let (user, boss) = (keys.caller(Some(b"user")), keys.caller(Some(b"boss")));
        assert!(!user.is_admin() && boss.is_admin());
        assert!(!keys.caller(None).is_admin());
        assert_ne!(user.owner(), boss.owner());
        assert_eq!(user.owner(), keys.caller(Some(b" user ")).owner());
        let digest: [u8; 32] = Sha256::digest(b"user").into();
        assert_ne!(user.owner(), Some(&digest));
        assert!(!format!("{user:?}").contains("user\""));
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
