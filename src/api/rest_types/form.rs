//! `POST /convert_to_unified`'s form, read as Starlette and python-multipart
//! read it: the part named `file` (the last one if several), whatever the
//! other parts hold. Hand-written rather than through `multer` (which
//! poem's form reader uses) because `multer` refuses the whole form when
//! any part's headers hold bytes outside HTTP's token rules (a control
//! character or invalid UTF-8 in another part's name), where the reference
//! reads the file all the same.

use memchr::memmem;
use poem::{Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::ConvertForm;
use super::lax::{Issue, Unprocessable};

/// The bytes of the form's `file` part; documented as [`ConvertForm`].
pub struct UploadForm(pub Vec<u8>);

impl<'a> ApiExtractor<'a> for UploadForm {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <ConvertForm as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <ConvertForm as Payload>::CONTENT_TYPE,
                schema: <ConvertForm as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let missing = || -> poem::Error {
            Unprocessable(vec![Issue::missing(
                &["body", "file"],
                &serde_json::Value::Null,
            )])
            .into()
        };
        // Starlette reads a body that is not a multipart form as an empty form.
        let Some(boundary) = request.content_type().and_then(boundary) else {
            return Err(missing());
        };
        let mut bytes = body.take()?.into_vec().await?;
        let (start, end) = file_part(&bytes, boundary.as_bytes()).ok_or_else(missing)?;
        // In place: an upload may be tens of megabytes.
        bytes.truncate(end);
        bytes.drain(..start);
        Ok(UploadForm(bytes))
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 200)
}

/// Where the content of the last part named `file` lies in `body`.
fn file_part(body: &[u8], boundary: &[u8]) -> Option<(usize, usize)> {
    let delimiter = [b"--".as_slice(), boundary].concat();
    let next_delimiter = [b"\r\n--".as_slice(), boundary].concat();
    let mut at = if body.starts_with(&delimiter) {
        0
    } else {
        memmem::find(body, &next_delimiter)? + 2
    };
    let mut found = None;
    loop {
        let after = at + delimiter.len();
        let rest = body.get(after..)?;
        if rest.starts_with(b"--") {
            return found;
        }
        let headers_start = after + memmem::find(rest, b"\r\n")? + 2;
        let headers_len = memmem::find(&body[headers_start..], b"\r\n\r\n");
        let (content_start, headers) = match headers_len {
            Some(n) => (
                headers_start + n + 4,
                &body[headers_start..headers_start + n],
            ),
            // No headers at all: the part starts with its blank line.
            None if body[headers_start..].starts_with(b"\r\n") => (headers_start + 2, &[][..]),
            None => return found,
        };
        let content_end = content_start + memmem::find(&body[content_start..], &next_delimiter)?;
        if part_name(headers).as_deref() == Some(b"file".as_slice()) {
            found = Some((content_start, content_end));
        }
        at = content_end + 2;
    }
}

/// The `name` parameter of a part's `Content-Disposition` header.
fn part_name(headers: &[u8]) -> Option<Vec<u8>> {
    let line = headers.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-disposition")
            .then(|| &line[colon + 1..])
    })?;
    params(line)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"name"))
        .map(|(_, v)| v)
}

/// A header value's `key=value` parameters after the first `;`, values
/// unquoted (`\` escapes one byte inside quotes).
fn params(value: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = value
        .iter()
        .position(|&b| b == b';')
        .map_or(value.len(), |p| p + 1);
    while i < value.len() {
        let key_end = value[i..]
            .iter()
            .position(|&b| b == b'=' || b == b';')
            .map_or(value.len(), |p| i + p);
        let key = value[i..key_end].trim_ascii().to_vec();
        i = key_end;
        let mut val = Vec::new();
        if value.get(i) == Some(&b'=') {
            i += 1;
            while value.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
                i += 1;
            }
            if value.get(i) == Some(&b'"') {
                i += 1;
                while let Some(&b) = value.get(i) {
                    i += 1;
                    match b {
                        b'"' => break,
                        b'\\' if i < value.len() => {
                            val.push(value[i]);
                            i += 1;
                        }
                        _ => val.push(b),
                    }
                }
            }
            let end = value[i..]
                .iter()
                .position(|&b| b == b';')
                .map_or(value.len(), |p| i + p);
            if val.is_empty() {
                val = value[i..end].trim_ascii().to_vec();
            }
            i = end;
        }
        i += 1;
        out.push((key, val));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, content) in parts {
            out.extend_from_slice(b"--B\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\"; filename=\"x.csv\"\r\nContent-Type: text/csv\r\n\r\n");
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--B--\r\n");
        out
    }

    fn file(body: &[u8]) -> Option<&[u8]> {
        file_part(body, b"B").map(|(s, e)| &body[s..e])
    }

    #[test]
    fn finds_the_file_among_parts_with_odd_names() {
        let body = form(&[
            ("\u{23e}".as_bytes(), b"{}"),
            (b"", b"3.1e+132"),
            (b"\xc2\xb8\xf1\x80\x90\x8d\x1ew", b""),
            (b"file", b"a,b\r\n1,2"),
        ]);
        assert_eq!(file(&body), Some(&b"a,b\r\n1,2"[..]));
    }

    #[test]
    fn the_last_file_part_wins_and_a_missing_one_is_none() {
        let body = form(&[(b"file", b"first"), (b"other", b"x"), (b"file", b"second")]);
        assert_eq!(file(&body), Some(&b"second"[..]));
        assert_eq!(file(&form(&[(b"files", b"x")])), None);
        assert_eq!(file(b"not a form"), None);
        assert_eq!(
            file(b"--B\r\nContent-Disposition: form-data; name=file\r\n\r\nunterminated"),
            None
        );
    }

    #[test]
    fn reads_names_quoted_unquoted_and_escaped() {
        assert_eq!(
            part_name(b"Content-Disposition: form-data; name=file"),
            Some(b"file".to_vec())
        );
        assert_eq!(
            part_name(b"content-disposition:form-data;NAME=\"fi\\\"le\""),
            Some(b"fi\"le".to_vec())
        );
        assert_eq!(part_name(b"Content-Type: text/plain"), None);
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc".into())
        );
        assert_eq!(boundary("application/json"), None);
    }
}
