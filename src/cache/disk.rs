//! A directory of cache records in a portable format (no pickle), each file
//! written atomically (temporary file, fsync, rename) and checksummed, the
//! directory bounded by bytes (oldest files removed first). A truncated or
//! foreign file is reported as corrupt, never trusted.
//!
//! Record layout, little-endian: magic `GLRPCC01`, u32 header length, the
//! header (UTF-8 JSON), u64 payload length, the payload, u32 CRC-32 of all
//! the bytes before it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::CacheError;

const MAGIC: &[u8; 8] = b"GLRPCC01";
const EXT: &str = "glc";

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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl DiskStore {
    /// Opens (creating) `dir`, bounded to `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, CacheError> {
        fs::create_dir_all(dir).map_err(|e| CacheError::Io(format!("{}: {e}", dir.display())))?;
        Ok(DiskStore {
            dir: dir.to_path_buf(),
            max_bytes,
        })
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
        {
            let mut f = fs::File::create(&tmp).map_err(io)?;
            f.write_all(&encode(header, payload)).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
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
        let mut files = self.files();
        files.sort_by_key(|f| f.1);
        files
            .into_iter()
            .filter_map(|(p, _, _)| p.file_stem()?.to_str().map(str::to_string))
            .collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.files().len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes every record; returns how many.
    pub fn clear(&self) -> usize {
        self.files()
            .into_iter()
            .filter(|(p, _, _)| fs::remove_file(p).is_ok())
            .count()
    }

    /// (path, modified, bytes) of each record file.
    fn files(&self) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == EXT))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((e.path(), m.modified().ok()?, m.len()))
            })
            .collect()
    }

    /// Removes the oldest records until the directory fits, never `keep`.
    fn enforce_bound(&self, keep: Option<&Path>) {
        let mut files = self.files();
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        if total <= self.max_bytes {
            return;
        }
        files.sort_by_key(|f| f.1);
        for (p, _, len) in files {
            if total <= self.max_bytes {
                break;
            }
            if Some(p.as_path()) == keep {
                continue;
            }
            if fs::remove_file(&p).is_ok() {
                tracing::info!(file = %p.display(), "disk cache over its bound: removed the oldest record");
                total -= len;
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
}
