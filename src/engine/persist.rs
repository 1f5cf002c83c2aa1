//! The on-disk form of an upload's forecasts: one record per (handle, window
//! kind) holding the unified CSV and every window forecast computed so far,
//! named by handle, kind and a fingerprint of the model, pipeline version,
//! sample count and seed, so that a different model or pipeline never reads
//! another's results. A record is written as soon as its upload is accepted
//! (the CSV, no forecast yet) and again as forecasts complete, by a
//! background thread that writes only the newest queued snapshot of each
//! record; reading checks every field and reports a damaged or foreign
//! record as such.
//!
//! Payload layout (little-endian): the CSV bytes, then for each of the N
//! windows (first to last) and the forward window a presence byte followed,
//! when present, by `steps * samples` values and `samples` log-variances
//! (f32).

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cache::{CacheError, DiskStore, Record};
use crate::pipeline::PIPELINE_VERSION;

use super::forecast::WindowForecast;
use super::upload::{Upload, WindowKind};

/// What a record must match to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 of the model weights (or another stable model id).
    pub model_id: String,
    /// MC samples per window (0 = deterministic).
    pub samples: usize,
    /// The global dropout seed.
    pub seed: u64,
}

impl Fingerprint {
    /// 16 hex characters naming this model, pipeline version, samples and seed.
    pub fn tag(&self) -> String {
        let text = format!(
            "{}|{}|{}|{}",
            self.model_id, PIPELINE_VERSION, self.samples, self.seed
        );
        let d = Sha256::digest(text.as_bytes());
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The record name of an upload.
pub fn record_name(handle: &str, kind: WindowKind, tag: &str) -> String {
    format!("{handle}-{}-{tag}", kind.as_str())
}

/// The handle of a record name written with `tag`, if it is one.
pub fn handle_of_name<'a>(name: &'a str, tag: &str) -> Option<&'a str> {
    let rest = name.strip_suffix(tag)?.strip_suffix('-')?;
    let (handle, kind) = rest.rsplit_once('-')?;
    matches!(kind, "full" | "quick").then_some(handle)
}

/// The handle and window kind of a record name written with `tag`.
pub fn parse_name<'a>(name: &'a str, tag: &str) -> Option<(&'a str, WindowKind)> {
    let handle = handle_of_name(name, tag)?;
    let kind = name
        .strip_suffix(tag)?
        .strip_suffix('-')?
        .rsplit_once('-')?
        .1;
    let kind = WindowKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
    Some((handle, kind))
}

/// True when a record's header says some of its windows are missing (a
/// crash or a shutdown came before they were computed).
pub fn incomplete(header: &serde_json::Value) -> bool {
    let num = |k: &str| header.get(k).and_then(serde_json::Value::as_u64);
    matches!((num("present"), num("windows")), (Some(p), Some(n)) if p < n)
}

/// A decoded record.
#[derive(Debug)]
pub struct Stored {
    /// The unified CSV.
    pub csv: Arc<str>,
    /// The N window forecasts, first to last, where computed.
    pub windows: Vec<Option<WindowForecast>>,
    /// The forward forecast, where computed.
    pub forward: Option<WindowForecast>,
    /// The export's unit and clock (absent in records written before they were kept).
    pub origin: Option<crate::plot::Origin>,
}

/// Encodes an upload's forecasts as a record (header, payload).
pub fn encode(
    fp: &Fingerprint,
    upload: &Upload,
    windows: &[Option<Arc<WindowForecast>>],
    forward: Option<&WindowForecast>,
    steps: usize,
) -> (serde_json::Value, Vec<u8>) {
    let samples = fp.samples.max(1);
    let header = json!({
        "content": "glurpc-forecasts",
        "handle": upload.handle,
        "kind": upload.kind.as_str(),
        "model_id": fp.model_id,
        "pipeline": PIPELINE_VERSION,
        "samples": fp.samples,
        "seed": fp.seed,
        "steps": steps,
        "windows": windows.len(),
        "present": windows.iter().flatten().count(),
        "csv_bytes": upload.csv.len(),
        "origin": upload.origin.to_json(),
    });
    let per = (steps + 1) * samples * 4;
    let mut payload = Vec::with_capacity(upload.csv.len() + (windows.len() + 1) * (per + 1));
    payload.extend_from_slice(upload.csv.as_bytes());
    let all = windows
        .iter()
        .map(|w| w.as_deref())
        .chain(std::iter::once(forward));
    for w in all {
        match w {
            Some(f) if f.steps == steps && f.samples == samples => {
                payload.push(1);
                for x in f.values.iter().chain(&f.logvar) {
                    payload.extend_from_slice(&x.to_le_bytes());
                }
            }
            _ => payload.push(0),
        }
    }
    (header, payload)
}

/// Decodes a record written for `fp`, `handle` and `kind`; the error says
/// why it cannot be used.
pub fn decode(
    record: &Record,
    fp: &Fingerprint,
    handle: &str,
    kind: WindowKind,
    version: u64,
) -> Result<Stored, String> {
    let h = &record.header;
    let field = |k: &str| h.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let expect = [
        ("content", json!("glurpc-forecasts")),
        ("handle", json!(handle)),
        ("kind", json!(kind.as_str())),
        ("model_id", json!(fp.model_id)),
        ("pipeline", json!(PIPELINE_VERSION)),
        ("samples", json!(fp.samples)),
        ("seed", json!(fp.seed)),
    ];
    for (k, want) in expect {
        if field(k) != want {
            return Err(format!("{k} is {}, expected {want}", field(k)));
        }
    }
    let num = |k: &str| {
        field(k)
            .as_u64()
            .map(|v| v as usize)
            .ok_or(format!("{k} missing"))
    };
    let (steps, n, csv_len) = (num("steps")?, num("windows")?, num("csv_bytes")?);
    let samples = fp.samples.max(1);
    let p = &record.payload;
    let csv = p
        .get(..csv_len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or("CSV missing or not UTF-8")?;
    let mut at = csv_len;
    let mut read_one = || -> Result<Option<WindowForecast>, String> {
        let flag = *p.get(at).ok_or("payload truncated")?;
        at += 1;
        if flag == 0 {
            return Ok(None);
        }
        let count = (steps + 1) * samples;
        let bytes = p.get(at..at + count * 4).ok_or("payload truncated")?;
        at += count * 4;
        let mut vals: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let logvar = vals.split_off(steps * samples);
        Ok(Some(WindowForecast {
            version,
            steps,
            samples,
            values: vals,
            logvar,
        }))
    };
    let windows = (0..n).map(|_| read_one()).collect::<Result<Vec<_>, _>>()?;
    let forward = read_one()?;
    if at != p.len() {
        return Err("trailing bytes".into());
    }
    Ok(Stored {
        csv: Arc::from(csv),
        windows,
        forward,
        origin: h.get("origin").and_then(crate::plot::Origin::from_json),
    })
}

/// A record to write.
pub struct WriteJob {
    /// File stem.
    pub name: String,
    /// Makes the header and payload, on the writer thread (and only for the
    /// snapshot actually written), so that the caller copies no CSV.
    pub encode: Box<dyn FnOnce() -> (serde_json::Value, Vec<u8>) + Send>,
    /// The upload it was made from: the write is dropped if the upload has
    /// been retired (deleted, flushed) by the time the writer reaches it.
    pub upload: Arc<Upload>,
}

/// What the writer thread does, in the order it was asked.
enum Op {
    Write(WriteJob),
    Remove(Vec<String>, mpsc::Sender<bool>),
    Clear(mpsc::Sender<()>),
}

/// The background writer: a thread draining a channel of disk operations.
/// Removals go through it too, so a write queued before a delete or flush
/// can never land after it and bring the record back.
pub struct Writer {
    store: DiskStore,
    tx: std::sync::Mutex<Option<mpsc::Sender<Op>>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// `first` and the writes queued right behind it, each record only in its
/// newest snapshot (a record is a whole snapshot of its upload), up to the
/// first other operation, which is returned to run after them.
fn coalesce(first: WriteJob, rx: &mpsc::Receiver<Op>) -> (Vec<WriteJob>, Option<Op>) {
    let mut writes = vec![first];
    while let Ok(op) = rx.try_recv() {
        match op {
            Op::Write(job) => match writes.iter_mut().find(|w| w.name == job.name) {
                Some(slot) => *slot = job,
                None => writes.push(job),
            },
            other => return (writes, Some(other)),
        }
    }
    (writes, None)
}

fn remove_all(store: &DiskStore, names: &[String]) -> bool {
    names
        .iter()
        .fold(false, |any, n| matches!(store.remove(n), Ok(true)) | any)
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn start(store: DiskStore) -> Result<Writer, CacheError> {
        let (tx, rx) = mpsc::channel::<Op>();
        let disk = store.clone();
        let thread = std::thread::Builder::new()
            .name("glurpc-persist".into())
            .spawn(move || {
                let mut next: Option<Op> = None;
                while let Some(op) = next.take().or_else(|| rx.recv().ok()) {
                    match op {
                        Op::Write(job) => {
                            let (writes, after) = coalesce(job, &rx);
                            next = after;
                            for job in writes.into_iter().filter(|j| !j.upload.is_retired()) {
                                let (header, payload) = (job.encode)();
                                if let Err(e) = disk.write(&job.name, &header, &payload) {
                                    tracing::warn!(error = %e, record = %job.name, "could not persist a cache record");
                                }
                            }
                        }
                        Op::Remove(names, done) => {
                            let _ = done.send(remove_all(&disk, &names));
                        }
                        Op::Clear(done) => {
                            disk.clear();
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| CacheError::Io(format!("could not start the cache writer: {e}")))?;
        Ok(Writer {
            store,
            tx: std::sync::Mutex::new(Some(tx)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    fn send_op(&self, op: Op) -> bool {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().is_some_and(|tx| tx.send(op).is_ok())
    }

    /// Queues a record; false once the writer is closed.
    pub fn send(&self, job: WriteJob) -> bool {
        self.send_op(Op::Write(job))
    }

    /// Removes records after every write queued before; true when any
    /// existed. Retire their uploads first so later writes are dropped.
    pub fn remove(&self, names: Vec<String>) -> bool {
        let (done, rx) = mpsc::channel();
        if self.send_op(Op::Remove(names.clone(), done))
            && let Ok(any) = rx.recv()
        {
            return any;
        }
        // Closed (no more writes can come): remove directly.
        remove_all(&self.store, &names)
    }

    /// Deletes every record after every write queued before.
    pub fn clear(&self) {
        let (done, rx) = mpsc::channel();
        if !(self.send_op(Op::Clear(done)) && rx.recv().is_ok()) {
            self.store.clear();
        }
    }

    /// Writes what is queued, then stops the thread.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tags_change_with_the_model() {
        let fp = Fingerprint {
            model_id: "abc".into(),
            samples: 10,
            seed: 0,
        };
        let tag = fp.tag();
        assert_eq!(tag.len(), 16);
        let name = record_name("h1", WindowKind::Quick, &tag);
        assert_eq!(handle_of_name(&name, &tag), Some("h1"));
        assert_eq!(parse_name(&name, &tag), Some(("h1", WindowKind::Quick)));
        let other = Fingerprint {
            model_id: "abd".into(),
            ..fp.clone()
        };
        assert_ne!(other.tag(), tag);
        assert_eq!(handle_of_name(&name, &other.tag()), None);
        let seeded = Fingerprint { seed: 1, ..fp };
        assert_ne!(seeded.tag(), tag);
    }

    fn quick_upload(version: u64) -> Upload {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/real/dexcom_us_14d.csv"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = crate::formats::parse_text(&text).unwrap();
        let csv: Arc<str> = Arc::from(parsed.csv.as_str());
        Upload::from_csv(
            csv,
            WindowKind::Quick,
            crate::pipeline::WindowConfig::QUICK,
            version,
        )
        .unwrap()
    }

    #[test]
    fn a_removal_lands_after_queued_writes_and_retired_uploads_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 30).unwrap();
        let writer = Writer::start(store.clone()).unwrap();
        let up = Arc::new(quick_upload(1));
        let job = |name: &str| {
            let n = name.to_string();
            WriteJob {
                name: name.into(),
                encode: Box::new(move || (json!({ "n": n }), vec![7; 1 << 16])),
                upload: up.clone(),
            }
        };
        for _ in 0..20 {
            assert!(writer.send(job("a")));
        }
        // Queued behind the writes: it finds the record and nothing follows.
        assert!(writer.remove(vec!["a".into()]));
        assert!(store.read("a").unwrap().is_none());

        assert!(writer.send(job("b")));
        writer.clear();
        assert!(store.is_empty());

        up.retire();
        assert!(writer.send(job("c")));
        writer.close();
        assert!(
            store.read("c").unwrap().is_none(),
            "a retired upload was written"
        );
        assert!(!writer.send(job("d")));
        assert!(!writer.remove(vec!["c".into()]));
    }

    #[test]
    fn records_round_trip_and_refuse_another_model_or_pipeline() {
        let up = quick_upload(7);
        let fp = Fingerprint {
            model_id: "m".into(),
            samples: 2,
            seed: 3,
        };
        let f = |x: f32| WindowForecast {
            version: 7,
            steps: 12,
            samples: 2,
            values: (0..24).map(|i| x + i as f32).collect(),
            logvar: vec![x, -x],
        };
        let windows = vec![None, Some(Arc::new(f(1.5)))];
        let (header, payload) = encode(&fp, &up, &windows, Some(&f(-2.0)), 12);
        assert!(incomplete(&header));
        let record = Record { header, payload };
        let s = decode(&record, &fp, &up.handle, WindowKind::Quick, 9).unwrap();
        assert_eq!(&*s.csv, &*up.csv);
        assert!(s.windows[0].is_none());
        assert_eq!(s.windows[1].as_ref().unwrap().values, f(1.5).values);
        assert_eq!(s.windows[1].as_ref().unwrap().version, 9);
        assert_eq!(s.forward.unwrap().logvar, vec![-2.0, 2.0]);

        let other = Fingerprint {
            model_id: "n".into(),
            ..fp.clone()
        };
        let e = decode(&record, &other, &up.handle, WindowKind::Quick, 9).unwrap_err();
        assert!(e.contains("model_id"), "{e}");
        let mut old = record.clone();
        old.header["pipeline"] = serde_json::json!("glurpc-pipeline-0");
        let e = decode(&old, &fp, &up.handle, WindowKind::Quick, 9).unwrap_err();
        assert!(e.contains("pipeline"), "{e}");
        let e = decode(&record, &fp, &up.handle, WindowKind::Full, 9).unwrap_err();
        assert!(e.contains("kind"), "{e}");
        let mut short = record.clone();
        short.payload.pop();
        assert!(decode(&short, &fp, &up.handle, WindowKind::Quick, 9).is_err());
    }
}
