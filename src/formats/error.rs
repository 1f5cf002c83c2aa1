//! Errors of the ingestion layer: every way an upload can fail to become a
//! unified table, each with a message that names the problem.

use thiserror::Error;

/// Why an upload could not be parsed into the unified table.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FormatError {
    /// The upload has no bytes, or only whitespace.
    #[error("Empty upload: the file has no content")]
    Empty,
    /// The upload is larger than the configured limit (after decompression).
    #[error("Upload too large: more than {limit} bytes after decompression")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A gzip upload that could not be decompressed (truncated or corrupt).
    #[error("Corrupt gzip upload: {0}")]
    Gzip(String),
    /// The bytes are not text (NUL bytes or mostly undecodable).
    #[error("Binary data, not a text CGM export: {0}")]
    Binary(String),
    /// No known format matched. The message mirrors cgm-format's.
    #[error("Unknown CGM data format. Sample lines: {}", python_list(.sample_lines))]
    UnknownFormat {
        /// The first lines of the text (at most 3).
        sample_lines: Vec<String>,
    },
    /// A format that was recognised but that this service does not parse.
    #[error("Unsupported format {format}: {reason}")]
    Unsupported {
        /// The detected format id.
        format: &'static str,
        /// Why it is not parsed, and what to do instead.
        reason: String,
    },
    /// Required columns are missing from the header.
    #[error("Malformed {format} file: missing required column(s): {}", .columns.join(", "))]
    MissingColumns {
        /// The detected format id.
        format: &'static str,
        /// The missing column names.
        columns: Vec<String>,
    },
    /// The text mentions a vendor's export (which is how formats are
    /// detected) but has none of its columns: a note, a README, a report.
    #[error(
        "Not a CGM export: the file mentions {format} but has none of its columns (where its header should be, it reads {first_line:?}); upload the CSV or JSON file as the device's software exported it"
    )]
    NotAnExport {
        /// The format its text mentions.
        format: &'static str,
        /// The start of the line read as its header.
        first_line: String,
    },
    /// The file was recognised but holds no usable data rows.
    #[error("No valid data rows found in {format} file: {reason}")]
    NoData {
        /// The detected format id.
        format: &'static str,
        /// What was missing.
        reason: String,
    },
    /// A timestamp that none of the format's layouts reads.
    #[error("Malformed {format} file: cannot parse timestamp {value:?} on line {line}")]
    BadTimestamp {
        /// The detected format id.
        format: &'static str,
        /// The offending text.
        value: String,
        /// 1-based line (CSV) or record (JSON) number.
        line: usize,
    },
    /// A value outside anything a real device produces.
    #[error("Implausible {what} {value} at {at} in {format} file (accepted: {range})")]
    Implausible {
        /// The detected format id.
        format: &'static str,
        /// Which quantity.
        what: &'static str,
        /// The value as text.
        value: String,
        /// The row's timestamp, to find it in the file.
        at: String,
        /// The accepted range, as text.
        range: &'static str,
    },
    /// Any other structural problem, with its location.
    #[error("Malformed {format} file: {message}")]
    Malformed {
        /// The detected format id.
        format: &'static str,
        /// What is wrong, and where.
        message: String,
    },
}

impl FormatError {
    /// Shorthand for [`FormatError::Malformed`].
    pub fn malformed(format: &'static str, message: impl Into<String>) -> Self {
        FormatError::Malformed {
            format,
            message: message.into(),
        }
    }
}

/// Renders strings as a Python list literal, as the reference's messages do.
fn python_list(items: &[String]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|s| {
            let mut out = String::from("'");
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        })
        .collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_format_message_matches_reference() {
        let e = FormatError::UnknownFormat {
            sample_lines: vec!["invalid data".into()],
        };
        assert_eq!(
            e.to_string(),
            "Unknown CGM data format. Sample lines: ['invalid data']"
        );
    }
}
