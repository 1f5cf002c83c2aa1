//! From upload bytes to text: gzip by magic bytes, a size limit, the
//! reference's corrupted-BOM repairs, UTF-16 with a BOM, and UTF-8 decoding
//! with replacement (as cgm-format's `utf-8-sig` with `errors='replace'`).

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::error::FormatError;

/// Default upper bound on an upload's size after decompression (64 MiB).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Corrupted BOM prefixes that cgm-format replaces by a real BOM, in its order.
const ENCODING_ARTIFACTS: [&[u8]; 4] = [
    b"\x22\xc3\xaf\xc2\xbb\xc2\xbf\x22",
    b"\x22\xc3\x83\xc2\xaf\xc3\x82\xc2\xbb\xc3\x82\xc2\xbf\x22",
    b"\xc3\xaf\xc2\xbb\xc2\xbf",
    b"\x22\xef\xbb\xbf\x22",
];

/// True when the bytes start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses a gzip upload (if it is one) under `max_bytes`.
pub fn decompress(bytes: &[u8], max_bytes: usize) -> Result<Cow<'_, [u8]>, FormatError> {
    if !is_gzip(bytes) {
        if bytes.len() > max_bytes {
            return Err(FormatError::TooLarge { limit: max_bytes });
        }
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(max_bytes));
    let mut reader = MultiGzDecoder::new(bytes).take(max_bytes as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| FormatError::Gzip(e.to_string()))?;
    if out.len() > max_bytes {
        return Err(FormatError::TooLarge { limit: max_bytes });
    }
    Ok(Cow::Owned(out))
}

/// Turns (decompressed) bytes into text the way cgm-format does, rejecting
/// empty and binary input with a clear error.
pub fn decode_text(bytes: &[u8]) -> Result<String, FormatError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FormatError::Empty);
    }
    // UTF-16 with a BOM (Excel's "Unicode text"): the reference cannot read it.
    if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        return finish(utf16(rest, u16::from_le_bytes));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        return finish(utf16(rest, u16::from_be_bytes));
    }
    let mut bytes = Cow::Borrowed(bytes);
    for pattern in ENCODING_ARTIFACTS {
        if bytes.starts_with(pattern) {
            let mut fixed = UTF8_BOM.to_vec();
            fixed.extend_from_slice(&bytes[pattern.len()..]);
            bytes = Cow::Owned(fixed);
            break;
        }
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
    if let Some(kind) = document_kind(body) {
        return Err(FormatError::Binary(kind.to_string()));
    }
    let sample = &body[..body.len().min(8192)];
    if let Some(pos) = sample.iter().position(|&b| b == 0) {
        return Err(FormatError::Binary(format!(
            "NUL byte at offset {pos}; expected a CSV or JSON text export"
        )));
    }
    finish(String::from_utf8_lossy(body).into_owned())
}

/// What a document that is not a text export is, with what to do instead,
/// from its magic bytes: spreadsheets and PDF reports are what people most
/// often upload by mistake.
fn document_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some(
            "this is an Excel workbook (.xlsx) or another ZIP archive, not a CSV export: open it in Excel, LibreOffice or Numbers and save it as CSV (UTF-8), or unzip it, then upload the CSV",
        )
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Some(
            "this is an Excel 97-2003 workbook (.xls) or another Office document, not a CSV export: open it and save it as CSV (UTF-8), then upload the CSV",
        )
    } else if bytes.starts_with(b"%PDF") {
        Some(
            "this is a PDF report, not a data export: export the readings as CSV from the device's software (Dexcom Clarity, LibreView, CareLink, Nightscout) and upload that",
        )
    } else {
        None
    }
}

fn utf16(bytes: &[u8], f: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

fn finish(text: String) -> Result<String, FormatError> {
    if text.trim().is_empty() {
        return Err(FormatError::Empty);
    }
    let sample: Vec<char> = text.chars().take(4096).collect();
    let bad = sample
        .iter()
        .filter(|&&c| c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()))
        .count();
    if bad * 10 > sample.len() {
        return Err(FormatError::Binary(format!(
            "{bad} of the first {} characters are not valid text (undecodable or control characters)",
            sample.len()
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_and_artifacts_are_removed() {
        assert_eq!(decode_text(b"\xef\xbb\xbfabc").unwrap(), "abc");
        assert_eq!(decode_text(b"\xc3\xaf\xc2\xbb\xc2\xbfabc").unwrap(), "abc");
        assert_eq!(decode_text(b"\"\xef\xbb\xbf\"abc").unwrap(), "abc");
    }

    #[test]
    fn utf16_is_decoded() {
        let mut b = vec![0xff, 0xfe];
        for u in "a,b\n".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&b).unwrap(), "a,b\n");
    }

    #[test]
    fn empty_and_binary_are_rejected() {
        assert_eq!(decode_text(b"  \n\r\n"), Err(FormatError::Empty));
        assert!(matches!(
            decode_text(b"abc\0def"),
            Err(FormatError::Binary(_))
        ));
        let garbage: Vec<u8> = (0..2000u32)
            .map(|i| (i * 7919 % 256) as u8 | 0x80)
            .collect();
        assert!(matches!(decode_text(&garbage), Err(FormatError::Binary(_))));
    }

    #[test]
    fn gzip_limits_apply() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decompress(&gz, 100_000).unwrap().len(), 10_000);
        assert_eq!(
            decompress(&gz, 1000),
            Err(FormatError::TooLarge { limit: 1000 })
        );
        assert!(matches!(
            decompress(&gz[..gz.len() / 2], 100_000),
            Err(FormatError::Gzip(_))
        ));
    }
}
