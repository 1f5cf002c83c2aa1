//! A directory of cache records in a portable format (no pickle), each file
//! written atomically (temporary file, fsync, rename) and checksummed, the
//! directory bounded by bytes (oldest files removed first). A truncated or
//! foreign file is reported as corrupt, never trusted.
//!
//! Records hold patient data: the directory is created 0700 and every file
//! 0600 (Unix). Temporary files (`.{name}.{pid}.tmp`) left by a crash are
//! removed when the store is opened and cleared, and count against the
//! bound while they exist.
//!
//! Record layout, little-endian: magic `GLRPCC01`, u32 header length, the
//! header (UTF-8 JSON), u64 payload length, the payload, u32 CRC-32 of all
//! the bytes before it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::CacheError;
use super::private;

const MAGIC: &[u8; 8] = b"GLRPCC01";
const EXT: &str = "glc";
/// A temporary file of this process younger than this is a write in
/// progress; any other temporary file is a crash's leftover.
const TMP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// One record: a JSON header and a binary payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Metadata (what the payload is, its version, keys).
    pub header: serde_json::Value,
    /// The data.
    pub payload: Vec<u8>,
}

/// Encodes a record.
pub fn encode(header: &serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let h = header.to_string();
    let mut out = Vec::with_capacity(8 + 4 + h.len() + 8 + payload.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a record, checking magic, lengths and checksum.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    if bytes.len() < 8 + 4 + 8 + 4 || &bytes[..8] != MAGIC {
        return Err("not a glurpc cache record".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    let hlen = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
    let hend = 12usize
        .checked_add(hlen)
        .filter(|e| *e + 8 <= body.len())
        .ok_or("bad header length")?;
    let header: serde_json::Value =
        serde_json::from_slice(&body[12..hend]).map_err(|e| format!("bad header: {e}"))?;
    let mut plen = [0u8; 8];
    plen.copy_from_slice(&body[hend..hend + 8]);
    let plen = u64::from_le_bytes(plen) as usize;
    if hend + 8 + plen != body.len() {
        return Err("bad payload length".into());
    }
    Ok(Record {
        header,
        payload: body[hend + 8..].to_vec(),
    })
}

/// The on-disk store.
#[derive(Debug, Clone)]
pub struct DiskStore {
    dir: PathBuf,
    max_bytes: u64,
}

/// True for a temporary file name (`.{name}.{pid}.tmp`).
fn is_temp(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.ends_with(".tmp")
}

/// The writer's process id in a temporary file name.
fn temp_pid(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_suffix(".tmp")?;
    stem.rsplit_once('.')?.1.parse().ok()
}

/// One file of the directory.
struct Entry {
    path: PathBuf,
    modified: std::time::SystemTime,
    bytes: u64,
    temp: bool,
}

impl Entry {
    /// A temporary file no write of this process is using.
    fn stale(&self) -> bool {
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let young = self.modified.elapsed().map_or(true, |age| age < TMP_GRACE);
        self.temp && !(temp_pid(name) == Some(std::process::id()) && young)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl DiskStore {
    /// Opens (creating, owner-only) `dir`, bounded to `max_bytes`: removes
    /// the temporary files a crash left, makes the records owner-only, and
    /// enforces the bound.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, CacheError> {
        private::create_dir_all(dir)
            .map_err(|e| CacheError::Io(format!("{}: {e}", dir.display())))?;
        if private::loose_permissions(dir) {
            tracing::warn!(
                dir = %dir.display(),
                "the cache directory is open to other users; its records are owner-only, but a private directory (0700) is safer"
            );
        }
        let store = DiskStore {
            dir: dir.to_path_buf(),
            max_bytes,
        };
        let removed = store.remove_stale_temps();
        if removed > 0 {
            tracing::info!(
                files = removed,
                "removed temporary cache files left by a crash"
            );
        }
        for e in store.entries().iter().filter(|e| !e.temp) {
            if let Err(err) = private::restrict_file(&e.path) {
                tracing::warn!(file = %e.path.display(), error = %err, "could not make a cache record owner-only");
            }
        }
        store.enforce_bound(None);
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf, CacheError> {
        if !valid_name(name) {
            return Err(CacheError::BadKey(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.{EXT}")))
    }

    /// Writes a record atomically, then enforces the directory bound.
    pub fn write(
        &self,
        name: &str,
        header: &serde_json::Value,
        payload: &[u8],
    ) -> Result<(), CacheError> {
        let path = self.path(name)?;
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let io = |e: std::io::Error| CacheError::Io(format!("{}: {e}", path.display()));
        let written = (|| {
            let mut f = private::create_file(&tmp)?;
            f.write_all(&encode(header, payload))?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        self.enforce_bound(Some(&path));
        Ok(())
    }

    /// Reads a record: `Ok(None)` when absent, `Err(Corrupt)` when damaged.
    pub fn read(&self, name: &str) -> Result<Option<Record>, CacheError> {
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::Io(format!("{}: {e}", path.display()))),
        };
        decode(&bytes)
            .map(Some)
            .map_err(|reason| CacheError::Corrupt {
                path: path.display().to_string(),
                reason,
            })
    }

    /// Reads only a record's header, unchecked (the checksum covers the
    /// whole file): a hint for deciding whether to read it; `None` when
    /// absent or not a record.
    pub fn read_header(&self, name: &str) -> Option<serde_json::Value> {
        use std::io::Read;
        let mut f = fs::File::open(self.path(name).ok()?).ok()?;
        let mut start = [0u8; 12];
        f.read_exact(&mut start).ok()?;
        if &start[..8] != MAGIC {
            return None;
        }
        let hlen = u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize;
        if hlen > 1 << 20 {
            return None;
        }
        let mut header = vec![0u8; hlen];
        f.read_exact(&mut header).ok()?;
        serde_json::from_slice(&header).ok()
    }

    /// Deletes a record; true when it existed.
    pub fn remove(&self, name: &str) -> Result<bool, CacheError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CacheError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Record names (file stems), oldest first.
    pub fn names(&self) -> Vec<String> {
        let mut files = self.records();
        files.sort_by_key(|f| f.modified);
        files
            .into_iter()
            .filter_map(|e| e.path.file_stem()?.to_str().map(str::to_string))
            .collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records().len()
    }

    /// Bytes of the directory's records and temporary files (what the
    /// bound counts).
    pub fn bytes(&self) -> u64 {
        self.entries().iter().map(|e| e.bytes).sum()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes every record and every stale temporary file; returns how
    /// many records.
    pub fn clear(&self) -> usize {
        self.remove_stale_temps();
        self.records()
            .into_iter()
            .filter(|e| fs::remove_file(&e.path).is_ok())
            .count()
    }

    /// Removes the temporary files no write of this process is using (a
    /// crash's leftovers); returns how many.
    pub fn remove_stale_temps(&self) -> usize {
        self.entries()
            .into_iter()
            .filter(|e| e.stale() && fs::remove_file(&e.path).is_ok())
            .count()
    }

    /// Record files.
    fn records(&self) -> Vec<Entry> {
        let mut v = self.entries();
        v.retain(|e| !e.temp);
        v
    }

    /// Record and temporary files.
    fn entries(&self) -> Vec<Entry> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let temp = is_temp(path.file_name()?.to_str()?);
                if !temp && path.extension().is_none_or(|x| x != EXT) {
                    return None;
                }
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                Some(Entry {
                    path,
                    modified: m.modified().ok()?,
                    bytes: m.len(),
                    temp,
                })
            })
            .collect()
    }

    /// Brings the directory (records and temporary files) within its bound:
    /// stale temporary files go first, then the oldest records, never `keep`.
    fn enforce_bound(&self, keep: Option<&Path>) {
        let mut files = self.entries();
        let mut total: u64 = files.iter().map(|f| f.bytes).sum();
        if total <= self.max_bytes {
            return;
        }
        files.sort_by_key(|f| (!f.stale(), f.modified));
        for e in files {
            if total <= self.max_bytes {
                break;
            }
            if Some(e.path.as_path()) == keep || (e.temp && !e.stale()) {
                continue;
            }
            if fs::remove_file(&e.path).is_ok() {
                tracing::info!(file = %e.path.display(), "disk cache over its bound: removed the oldest file");
                total -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        s.write("abc", &json!({"v": 1}), b"payload").unwrap();
        let r = s.read("abc").unwrap().unwrap();
        assert_eq!(s.read_header("abc"), Some(json!({"v": 1})));
        assert_eq!(
            (r.header["v"].as_i64(), r.payload.as_slice()),
            (Some(1), &b"payload"[..])
        );
        assert!(s.read("missing").unwrap().is_none());
        let path = dir.path().join("abc.glc");
        let bytes = fs::read(&path).unwrap();
        for cut in [0, 5, 20, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                matches!(s.read("abc"), Err(CacheError::Corrupt { .. })),
                "cut {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[14] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert!(matches!(s.read("abc"), Err(CacheError::Corrupt { .. })));
        fs::write(&path, b"PK\x03\x04 a pickle or zip").unwrap();
        assert!(matches!(s.read("abc"), Err(CacheError::Corrupt { .. })));
        assert!(matches!(
            s.write("../x", &json!({}), b""),
            Err(CacheError::BadKey(_))
        ));
    }

    #[test]
    fn the_directory_is_bounded_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&json!({}), &[0u8; 1000]).len() as u64;
        let s = DiskStore::open(dir.path(), 2 * one + 10).unwrap();
        for name in ["a", "b", "c"] {
            s.write(name, &json!({}), &[0u8; 1000]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(s.names(), vec!["b", "c"]);
        assert_eq!(s.clear(), 2);
        assert!(s.is_empty());
    }

    /// What a `kill -9` during a write leaves: a temporary file of another
    /// (dead) process holding a whole record.
    fn leftover(dir: &Path, name: &str, bytes: usize) -> PathBuf {
        let p = dir.join(format!(".{name}.4000000.tmp"));
        fs::write(
            &p,
            encode(&json!({"csv": "patient data"}), &vec![1u8; bytes]),
        )
        .unwrap();
        p
    }

    #[test]
    fn crash_leftovers_are_removed_at_open_and_on_clear_and_count_against_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let at_start = leftover(dir.path(), "h-full-t", 5000);
        let s = DiskStore::open(dir.path(), 4000).unwrap();
        assert!(!at_start.exists(), "a restart removes a crash's leftover");

        // One appearing while the store is open counts against the bound and
        // goes before any record.
        s.write("a", &json!({}), &[0u8; 1000]).unwrap();
        let later = leftover(dir.path(), "h-quick-t", 5000);
        s.write("b", &json!({}), &[0u8; 1000]).unwrap();
        assert!(!later.exists());
        assert_eq!(s.names(), vec!["a", "b"]);
        assert!(s.bytes() <= 4000, "{}", s.bytes());

        // Clearing (flush) removes them too.
        let again = leftover(dir.path(), "h-full-t", 10);
        assert_eq!(s.clear(), 2);
        assert!(!again.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn records_and_the_directory_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("cache_storage");
        let s = DiskStore::open(&dir, 1 << 20).unwrap();
        assert_eq!(mode(&dir), 0o700);
        s.write("a", &json!({}), b"patient data").unwrap();
        assert_eq!(mode(&dir.join("a.glc")), 0o600);
        // A record written by an older version (0644) is made owner-only.
        fs::set_permissions(dir.join("a.glc"), fs::Permissions::from_mode(0o644)).unwrap();
        DiskStore::open(&dir, 1 << 20).unwrap();
        assert_eq!(mode(&dir.join("a.glc")), 0o600);
    }
}
