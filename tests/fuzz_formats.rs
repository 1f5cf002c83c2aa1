//! Mutation fuzzing of detection and parsing: real and synthetic exports are
//! mutated at random (byte flips, insertions, deletions, truncation, line
//! duplication and swaps, digit and delimiter damage) and parsed. Nothing may
//! panic, and every successful parse must round-trip through its own unified
//! CSV to the same handle.
//!
//! Time-bounded: `GLURPC_FUZZ_SECONDS` (default 3); seed with `GLURPC_FUZZ_SEED`.
//! Run for a minute: `GLURPC_FUZZ_SECONDS=60 cargo test --test fuzz_formats -- --nocapture`.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use glurpc::formats::{self, ParseOptions};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for dir in ["real", "synthetic"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            let raw = std::fs::read(&p).unwrap();
            let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
                let mut s = Vec::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_end(&mut s)
                    .unwrap();
                s
            } else {
                raw
            };
            // The first 300 lines keep each case fast while keeping every header.
            let cut = bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(300)
                .map_or(bytes.len(), |(i, _)| i + 1);
            out.push(bytes[..cut].to_vec());
        }
    }
    out
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    const NOISE: &[u8] = b",;\"\n\r:-./ 0123456789aZ\xff\xc3\0[]{}";
    match rng.below(9) {
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(data.len() + 1);
            let n = 1 + rng.below(8);
            for _ in 0..n {
                data.insert(i, NOISE[rng.below(NOISE.len())]);
            }
        }
        2 if !data.is_empty() => {
            let i = rng.below(data.len());
            let n = (1 + rng.below(64)).min(data.len() - i);
            data.drain(i..i + n);
        }
        3 => {
            let i = rng.below(data.len() + 1);
            data.truncate(i);
        }
        4 | 5 => {
            let lines: Vec<(usize, usize)> = line_spans(data);
            if lines.len() >= 2 {
                let a = lines[rng.below(lines.len())];
                let b = lines[rng.below(lines.len())];
                let line_a = data[a.0..a.1].to_vec();
                if rng.below(2) == 0 {
                    data.splice(b.0..b.0, line_a);
                } else if a.1 <= b.0 {
                    let line_b = data[b.0..b.1].to_vec();
                    data.splice(b.0..b.1, line_a);
                    data.splice(a.0..a.1, line_b);
                }
            }
        }
        6 if !data.is_empty() => {
            // Damage a digit or a delimiter.
            for _ in 0..16 {
                let i = rng.below(data.len());
                if data[i].is_ascii_digit() || b",;:-/.".contains(&data[i]) {
                    data[i] = NOISE[rng.below(NOISE.len())];
                    break;
                }
            }
        }
        7 if !data.is_empty() => {
            // Repeat a chunk many times (huge numbers, long fields).
            let i = rng.below(data.len());
            let n = (1 + rng.below(16)).min(data.len() - i);
            let chunk = data[i..i + n].to_vec();
            for _ in 0..rng.below(64) {
                data.splice(i..i, chunk.iter().copied());
            }
        }
        _ => {
            let i = rng.below(data.len() + 1);
            data.splice(
                i..i,
                b"High,Low,NaN,inf,-1e308,1e400,99999999999999999999"
                    .iter()
                    .copied(),
            );
        }
    }
}

fn line_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    out
}

#[test]
fn fuzz_detection_and_parsing() {
    let seconds: u64 = std::env::var("GLURPC_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("GLURPC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let corpus = seeds();
    assert!(corpus.len() >= 10, "seed corpus missing");
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut cases, mut ok) = (0u64, 0u64);
    let opts = ParseOptions { max_bytes: 4 << 20 };
    while Instant::now() < deadline {
        let mut data = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(6) {
            mutate(&mut rng, &mut data);
        }
        cases += 1;
        let result = catch_unwind(AssertUnwindSafe(|| formats::parse_bytes(&data, &opts)));
        let parsed = match result {
            Ok(r) => r,
            Err(_) => {
                let path = std::env::temp_dir().join(format!("glurpc-fuzz-crash-{cases}.bin"));
                std::fs::write(&path, &data).unwrap();
                panic!(
                    "parser panicked on case {cases} (seed {seed}); input saved to {}",
                    path.display()
                );
            }
        };
        if let Ok(p) = parsed {
            ok += 1;
            let again = formats::parse_bytes(p.csv.as_bytes(), &opts)
                .unwrap_or_else(|e| panic!("round trip of a {} parse failed: {e}", p.format));
            assert_eq!(
                again.handle, p.handle,
                "round trip changed the handle (case {cases})"
            );
        }
    }
    println!(
        "fuzz: {cases} cases in {seconds} s, {ok} parsed, {} rejected with an error",
        cases - ok
    );
    assert!(cases > 0);
}
