//! A small CSV layer shared by the vendor parsers: RFC-4180 records with line
//! numbers, header lookup with cgm-format's name cleaning, ragged rows, empty
//! cells as nulls, and the number and timestamp conversions polars applies.

use super::error::FormatError;
use super::timefmt::Millis;

/// A parsed CSV section: cleaned header names and data records.
pub struct CsvTable {
    /// Column names after cleaning.
    pub header: Vec<String>,
    /// Data records, each with the 1-based line it starts on.
    pub records: Records,
}

/// Data records stored flat: every field's text in one buffer and 4-byte
/// offsets, about 2.5 times less memory than one `csv::StringRecord` per row
/// (a heap buffer, a bounds vector of `usize` and a position each), which
/// dominated the memory of reading a large export. Hand-written for that.
#[derive(Default)]
pub struct Records {
    text: String,
    /// End of each field in `text`.
    ends: Vec<u32>,
    /// Per record: its 1-based line and the index of its first field in `ends`.
    rows: Vec<(u32, u32)>,
}

/// One record of [`Records`].
#[derive(Clone, Copy)]
pub struct Rec<'a> {
    text: &'a str,
    /// The field ends of this record.
    ends: &'a [u32],
    /// Where this record's first field starts in `text`.
    start: u32,
}

impl<'a> Rec<'a> {
    /// Field `i`, if the record has it.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)? as usize;
        let start = match i {
            0 => self.start as usize,
            _ => self.ends[i - 1] as usize,
        };
        self.text.get(start..end)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True for a record without fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl Records {
    fn push(&mut self, line: usize, record: &csv::StringRecord) -> Result<(), ()> {
        let first = u32::try_from(self.ends.len()).map_err(|_| ())?;
        for field in record.iter() {
            self.text.push_str(field);
            self.ends
                .push(u32::try_from(self.text.len()).map_err(|_| ())?);
        }
        self.rows
            .push((u32::try_from(line).map_err(|_| ())?, first));
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Record `k` with its 1-based line.
    pub fn get(&self, k: usize) -> Option<(usize, Rec<'_>)> {
        let &(line, first) = self.rows.get(k)?;
        let last = self
            .rows
            .get(k + 1)
            .map_or(self.ends.len(), |r| r.1 as usize);
        let first = first as usize;
        let start = match first {
            0 => 0,
            f => self.ends[f - 1],
        };
        Some((
            line as usize,
            Rec {
                text: &self.text,
                ends: &self.ends[first..last],
                start,
            },
        ))
    }

    /// The records with their 1-based lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Rec<'_>)> {
        (0..self.rows.len()).filter_map(|k| self.get(k))
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = (usize, Rec<'a>);
    type IntoIter = Box<dyn Iterator<Item = (usize, Rec<'a>)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// How header names are cleaned (cgm-format differs per parser).
#[derive(Clone, Copy)]
pub enum HeaderClean {
    /// Strip whitespace, remove `"` and curly quotes (Dexcom, Libre, unified).
    Quotes,
    /// Strip whitespace and a leading BOM; curly quotes become straight (Medtronic).
    Medtronic,
    /// Strip whitespace only (Nightscout).
    Trim,
}

impl CsvTable {
    /// Reads `text` after skipping `skip_lines` raw lines; the next record is the
    /// header. Blank lines are skipped (they yield all-null rows in polars,
    /// which every parser drops).
    pub fn read(
        text: &str,
        delimiter: u8,
        skip_lines: usize,
        clean: HeaderClean,
        format: &'static str,
    ) -> Result<CsvTable, FormatError> {
        let mut offset = 0usize;
        for _ in 0..skip_lines {
            match text[offset..].find('\n') {
                Some(i) => offset += i + 1,
                None => {
                    return Err(FormatError::NoData {
                        format,
                        reason: format!("the file has fewer than {} lines", skip_lines + 1),
                    });
                }
            }
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(&text.as_bytes()[offset..]);
        let mut header: Option<Vec<String>> = None;
        let mut records = Records::default();
        let mut record = csv::StringRecord::new();
        // Line numbers from byte offsets (the csv crate does not count blank lines).
        let body = &text.as_bytes()[offset..];
        let (mut seen_byte, mut seen_line) = (0usize, skip_lines + 1);
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line() as usize + skip_lines);
                    return Err(FormatError::malformed(
                        format,
                        format!("CSV error near line {line}: {e}"),
                    ));
                }
            }
            if record.len() == 1 && record[0].trim().is_empty() {
                continue;
            }
            let mut byte = record
                .position()
                .map_or(seen_byte, |p| p.byte() as usize)
                .min(body.len());
            while byte < body.len() && (body[byte] == b'\n' || body[byte] == b'\r') {
                byte += 1;
            }
            if byte > seen_byte {
                seen_line += body[seen_byte..byte]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                seen_byte = byte;
            }
            let line = seen_line;
            match header {
                None => header = Some(record.iter().map(|h| clean_name(h, clean)).collect()),
                Some(_) => {
                    if records.push(line, &record).is_err() {
                        return Err(FormatError::malformed(
                            format,
                            "more than 4 GiB of CSV fields".to_string(),
                        ));
                    }
                }
            }
        }
        let header = header.ok_or_else(|| FormatError::NoData {
            format,
            reason: "no header line".into(),
        })?;
        Ok(CsvTable { header, records })
    }

    /// Index of a column by exact (cleaned) name.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Index of the first of `names` present.
    pub fn col_any(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.col(n))
    }

    /// Indices of required columns, or a [`FormatError::MissingColumns`].
    pub fn require<const N: usize>(
        &self,
        names: [&[&str]; N],
        format: &'static str,
    ) -> Result<[usize; N], FormatError> {
        let mut out = [0usize; N];
        let mut missing = Vec::new();
        for (i, alts) in names.iter().enumerate() {
            match self.col_any(alts) {
                Some(c) => out[i] = c,
                None => missing.push(alts[0].to_string()),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else if N > 0 && missing.len() == N {
            // Not one column of the format: not a table of that vendor at all.
            Err(FormatError::NotAnExport {
                format,
                first_line: self.header.join(",").chars().take(80).collect(),
            })
        } else {
            Err(FormatError::MissingColumns {
                format,
                columns: missing,
            })
        }
    }
}

fn clean_name(raw: &str, clean: HeaderClean) -> String {
    match clean {
        HeaderClean::Quotes => raw.trim().replace(['\u{201c}', '\u{201d}', '"'], ""),
        HeaderClean::Medtronic => raw
            .trim()
            .trim_start_matches('\u{feff}')
            .replace(['\u{201c}', '\u{201d}'], "\""),
        HeaderClean::Trim => raw.trim().to_string(),
    }
}

/// A cell as polars sees it: `None` when absent (ragged row) or empty.
pub fn cell<'a>(rec: Rec<'a>, idx: Option<usize>) -> Option<&'a str> {
    let s = rec.get(idx?)?;
    if s.is_empty() { None } else { Some(s) }
}

/// polars' non-strict string-to-Float64 cast.
pub fn to_f64(s: Option<&str>) -> Option<f64> {
    s?.parse::<f64>().ok()
}

/// polars' non-strict string-to-Int64 cast.
pub fn to_i64(s: Option<&str>) -> Option<i64> {
    s?.parse::<i64>().ok()
}

/// Parses `s` with a strftime-style layout (chrono semantics: one- or
/// two-digit fields, `%.f` optional fraction) into naive milliseconds.
pub fn parse_ts(s: &str, layout: &str) -> Option<Millis> {
    super::timefmt::parse(s, layout)
}

/// The first layout that reads `sample`, as cgm-format's timestamp probe.
pub fn probe_layout<'a>(sample: &str, layouts: &[&'a str]) -> Option<&'a str> {
    layouts
        .iter()
        .copied()
        .find(|l| parse_ts(sample, l).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_digit_hour_parses() {
        assert!(parse_ts("2025-05-01 0:01:47", "%Y-%m-%d %H:%M:%S").is_some());
        assert!(parse_ts("2026-03-31T19:51:03.000Z", "%Y-%m-%dT%H:%M:%S%.fZ").is_some());
        assert!(parse_ts("4/7/2026 7:59:42 PM", "%m/%d/%Y %I:%M:%S %p").is_some());
    }

    #[test]
    fn ragged_and_blank_lines() {
        let t = CsvTable::read("x\na,b\n1,2\n\n3\n", b',', 1, HeaderClean::Quotes, "t").unwrap();
        assert_eq!(t.header, vec!["a", "b"]);
        assert_eq!(t.records.len(), 2);
        let (line, second) = t.records.get(1).unwrap();
        assert_eq!(
            line,
            5,
            "{:?}",
            t.records.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        assert_eq!(cell(second, Some(1)), None);
        assert_eq!(cell(second, Some(0)), Some("3"));
        let (_, first) = t.records.get(0).unwrap();
        assert_eq!(
            (first.get(0), first.get(1), first.len()),
            (Some("1"), Some("2"), 2)
        );
    }
}
