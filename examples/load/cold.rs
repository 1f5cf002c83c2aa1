//! The `quick-plot-cold` uploads: the unified CSV with a few readings
//! rewritten per request, so that every request is a new file.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

/// Readings changed per cold upload, and the values each takes (100..300).
pub(crate) const COLD_ROWS: u32 = 4;
pub(crate) const COLD_BASE: u64 = 200;

/// The unified CSV with the glucose of its last [`COLD_ROWS`] readings left
/// open: request `k` writes `k`'s base-[`COLD_BASE`] digits there (as
/// 100 + digit), so distinct `k`s give distinct uploads.
pub(crate) struct ColdTemplate {
    parts: Vec<Part>,
    /// The columns rewritten: `glucose` and `original_glucose`.
    columns: Vec<usize>,
    len: usize,
}

enum Part {
    Text(String),
    Row { fields: Vec<String>, digit: u32 },
}

impl ColdTemplate {
    pub(crate) fn new(csv: &str) -> Result<ColdTemplate> {
        let lines: Vec<&str> = csv.split_inclusive('\n').collect();
        let header = lines.first().context("the unified CSV is empty")?;
        let names: Vec<&str> = header.trim_end().split(',').collect();
        let glucose = names
            .iter()
            .position(|n| *n == "glucose")
            .context("the unified CSV has no glucose column")?;
        let columns: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == "glucose" || **n == "original_glucose")
            .map(|(i, _)| i)
            .collect();
        // The last readings: rows with a glucose value and no quoting.
        let mut picked = Vec::new();
        for (i, line) in lines.iter().enumerate().skip(1).rev() {
            if picked.len() == COLD_ROWS as usize {
                break;
            }
            if line.contains('"') {
                continue;
            }
            let fields: Vec<&str> = line.trim_end().split(',').collect();
            if fields.len() == names.len() && !fields[glucose].is_empty() {
                picked.push(i);
            }
        }
        if picked.len() < COLD_ROWS as usize {
            bail!("the unified CSV has fewer than {COLD_ROWS} readings");
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        for (i, line) in lines.iter().enumerate() {
            match picked.iter().position(|&p| p == i) {
                Some(digit) => {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                    let fields = line.trim_end().split(',').map(str::to_string).collect();
                    parts.push(Part::Row {
                        fields,
                        digit: digit as u32,
                    });
                }
                None => text.push_str(line),
            }
        }
        parts.push(Part::Text(text));
        Ok(ColdTemplate {
            parts,
            columns,
            len: csv.len(),
        })
    }

    pub(crate) fn render(&self, k: u64) -> String {
        let mut out = String::with_capacity(self.len + 64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Row { fields, digit } => {
                    let value = 100 + (k / COLD_BASE.pow(*digit)) % COLD_BASE;
                    for (i, f) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        if self.columns.contains(&i) {
                            let _ = write!(out, "{value}.0");
                        } else {
                            out.push_str(f);
                        }
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}
