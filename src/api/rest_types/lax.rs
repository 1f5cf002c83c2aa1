//! The JSON request bodies as FastAPI and pydantic 2 read them, so that
//! clients of the reference keep working: pydantic's lax mode for the
//! fields (`"index": "0"` or `-1.0`, `"force_calculate": "true"`, `1`, ...)
//! and nothing more (a number is not a string), a body sent without a
//! `Content-Type` read as JSON (`requests.post(url, data=json.dumps(b))`),
//! and validation failures reported in FastAPI's 422 body with pydantic's
//! error types, messages and locations. The rules are pydantic-core's
//! (`str_as_int`, `clean_int_str`, `float_as_int`, `str_as_bool`,
//! `int_as_bool`) and the conversion table of the pydantic documentation
//! (<https://docs.pydantic.dev/latest/concepts/conversion_table/>).

use poem::http::StatusCode;
use poem::{Request, RequestBody, Response};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::Serialize;
use serde_json::{Map, Value};

use super::lax_schema::{exactly_one_of, lax_bool_schema, lax_int_le0_schema, replace_property};
use super::{ForecastRequest, PlotRequest, ProcessRequest};

/// Characters of a string echoed back in `input`.
const ECHO_CHARS: usize = 100;
/// Items of an array or object echoed back in `input`.
const ECHO_ITEMS: usize = 20;

/// One entry of FastAPI's 422 `detail` list (pydantic's error dict without
/// its `url`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// pydantic's error type (`missing`, `int_parsing`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where: `["body", "csv_base64"]`, `["query", "action"]`.
    pub loc: Vec<Value>,
    /// pydantic's message.
    pub msg: String,
    /// The value refused (strings over 100 characters and containers over
    /// 20 items truncated).
    pub input: Value,
    /// The constraint's parameters (`{"le": 0}`), when it has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl Issue {
    /// An issue at `loc` (strings) about `input`.
    pub fn new(kind: &'static str, loc: &[&str], msg: impl Into<String>, input: &Value) -> Issue {
        Issue {
            kind,
            loc: loc.iter().map(|s| Value::from(*s)).collect(),
            msg: msg.into(),
            input: echo(input),
            ctx: None,
        }
    }

    /// `missing` / `Field required` at `loc`, with `input` the enclosing value.
    pub fn missing(loc: &[&str], input: &Value) -> Issue {
        Issue::new("missing", loc, "Field required", input)
    }

    fn with_ctx(mut self, ctx: Value) -> Issue {
        self.ctx = Some(ctx);
        self
    }
}

/// `input` as echoed back: long strings and containers truncated.
pub fn echo(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > ECHO_CHARS => Value::String(format!(
            "{}...",
            s.chars().take(ECHO_CHARS).collect::<String>()
        )),
        Value::Array(a) => a.iter().take(ECHO_ITEMS).map(echo).collect(),
        Value::Object(m) => Value::Object(
            m.iter()
                .take(ECHO_ITEMS)
                .map(|(k, v)| (k.clone(), echo(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A request that failed validation: FastAPI's 422
/// `{"detail": [{"type", "loc", "msg", "input", "ctx"?}, ...]}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("request validation failed")]
pub struct Unprocessable(pub Vec<Issue>);

impl poem::error::ResponseError for Unprocessable {
    fn status(&self) -> StatusCode {
        StatusCode::UNPROCESSABLE_ENTITY
    }

    fn as_response(&self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            detail: &'a [Issue],
        }
        let builder = Response::builder().status(StatusCode::UNPROCESSABLE_ENTITY);
        match serde_json::to_vec(&Body { detail: &self.0 }) {
            Ok(body) => builder.content_type("application/json").body(body),
            Err(_) => builder.finish(),
        }
    }
}

/// Why a value was refused: pydantic's type, message and context.
type Refusal = (&'static str, String, Option<Value>);

fn refusal(kind: &'static str, msg: &str) -> Refusal {
    (kind, msg.to_string(), None)
}

const INT_TYPE: &str = "Input should be a valid integer";
const INT_PARSING: &str = "Input should be a valid integer, unable to parse string as an integer";
const INT_FROM_FLOAT: &str = "Input should be a valid integer, got a number with a fractional part";
const INT_SIZE: &str = "Unable to parse input string as an integer, exceeded maximum size";
const BOOL_TYPE: &str = "Input should be a valid boolean";
const BOOL_PARSING: &str = "Input should be a valid boolean, unable to interpret input";
const STRING_TYPE: &str = "Input should be a valid string";
const MODEL_TYPE: &str = "Input should be a valid dictionary or object to extract fields from";

/// A JSON integer literal (`-?(0|[1-9][0-9]*)`), saturated to `i128`.
fn json_int(s: &str) -> Option<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let b = digits.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut v: i128 = 0;
    for d in b {
        v = v.saturating_mul(10).saturating_add(i128::from(d - b'0'));
    }
    Some(if neg { -v } else { v })
}

/// pydantic-core's `strip_leading_zeros`.
fn strip_leading_zeros(s: &str) -> Option<&str> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '0')) => {}
        Some((_, c)) if c.is_ascii_digit() || c == '-' => return Some(s),
        _ => return None,
    }
    for (i, c) in chars {
        match c {
            '0' | '_' => {}
            '1'..='9' | '-' => return Some(&s[i..]),
            '.' => return Some(&s[i - 1..]),
            _ => return None,
        }
    }
    Some(&s[s.len() - 1..])
}

/// pydantic-core's `strip_underscores`: `1_000` (not `_1`, `1_`, `1__0`).
fn strip_underscores(s: &str) -> Option<String> {
    if s.starts_with('_') || s.ends_with('_') || !s.contains('_') || s.contains("__") {
        None
    } else {
        Some(s.replace('_', ""))
    }
}

/// pydantic-core's `clean_int_str`: whitespace, a leading `+`, leading
/// zeros, an all-zero fraction (`-1.0`) and digit-group underscores removed;
/// `None` when nothing changed or the text cannot be an integer.
fn clean_int_str(orig: &str) -> Option<String> {
    let mut s = orig.trim();
    if let Some(rest) = s.strip_prefix('+') {
        if rest.starts_with('-') {
            return None;
        }
        s = rest;
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        if rest.starts_with(['-', '+']) {
            return None;
        }
        negative = true;
        s = rest;
    }
    s = strip_leading_zeros(s)?;
    if let Some(i) = s.find('.') {
        let fraction = &s[i + 1..];
        if !fraction.is_empty() && fraction.chars().all(|c| c == '0') {
            s = &s[..i];
        }
    }
    let sign = if negative { "-" } else { "" };
    if let Some(stripped) = strip_underscores(s) {
        return Some(format!("{sign}{stripped}"));
    }
    (orig.len() != s.len()).then(|| format!("{sign}{s}"))
}

/// pydantic-core's `str_as_int`.
fn str_as_int(s: &str) -> Result<i128, Refusal> {
    if s.len() > 4300 {
        return Err(refusal("int_parsing_size", INT_SIZE));
    }
    json_int(s)
        .or_else(|| clean_int_str(s).and_then(|c| json_int(&c)))
        .ok_or_else(|| refusal("int_parsing", INT_PARSING))
}

/// pydantic-core's `float_as_int`.
fn float_as_int(f: f64) -> Result<i128, Refusal> {
    if !f.is_finite() {
        Err(refusal("finite_number", "Input should be a finite number"))
    } else if f % 1.0 != 0.0 {
        Err(refusal("int_from_float", INT_FROM_FLOAT))
    } else if (i64::MIN as f64) < f && f < (i64::MAX as f64) {
        Ok(f as i128)
    } else {
        Err(refusal("int_parsing_size", INT_SIZE))
    }
}

/// An `int` field in lax mode: integers, booleans, integral floats and
/// integer strings.
pub(super) fn lax_int(v: &Value) -> Result<i128, Refusal> {
    match v {
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ok(i128::from(i)),
            (None, Some(u), _) => Ok(i128::from(u)),
            // Below -2^63 a JSON integer arrives as a float: pydantic reads
            // an integer literal of any size, so read it (saturated) too.
            (None, None, Some(f)) if f <= i64::MIN as f64 && f.fract() == 0.0 => Ok(f as i128),
            (None, None, Some(f)) => float_as_int(f),
            _ => Err(refusal("int_type", INT_TYPE)),
        },
        Value::String(s) => str_as_int(s),
        _ => Err(refusal("int_type", INT_TYPE)),
    }
}

/// A `bool` field in lax mode: booleans, 0 and 1 (also 0.0 and 1.0), and
/// the strings `0`, `1` and (any case) `f`, `n`, `no`, `off`, `false`, `t`,
/// `y`, `on`, `yes`, `true`.
pub(super) fn lax_bool(v: &Value) -> Result<bool, Refusal> {
    let int = |i: i128| match i {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(refusal("bool_parsing", BOOL_PARSING)),
    };
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => int(i.into()),
            (None, Some(_), _) => Err(refusal("bool_parsing", BOOL_PARSING)),
            (None, None, Some(f)) => match float_as_int(f) {
                Ok(i) => int(i),
                Err(_) => Err(refusal("bool_type", BOOL_TYPE)),
            },
            _ => Err(refusal("bool_type", BOOL_TYPE)),
        },
        Value::String(s) => {
            let is = |w: &str| s.eq_ignore_ascii_case(w);
            if s == "0" || ["f", "n", "no", "off", "false"].into_iter().any(is) {
                Ok(false)
            } else if s == "1" || ["t", "y", "on", "yes", "true"].into_iter().any(is) {
                Ok(true)
            } else {
                Err(refusal("bool_parsing", BOOL_PARSING))
            }
        }
        _ => Err(refusal("bool_type", BOOL_TYPE)),
    }
}

/// The fields of a body object, read one by one in declaration order; the
/// issues are collected as pydantic collects them (all of them).
struct Fields {
    obj: Map<String, Value>,
    whole: Value,
    issues: Vec<Issue>,
}

impl Fields {
    fn of(body: Value) -> Result<Fields, Vec<Issue>> {
        match body {
            Value::Object(obj) => {
                let whole = echo(&Value::Object(obj.clone()));
                Ok(Fields {
                    obj,
                    whole,
                    issues: Vec::new(),
                })
            }
            other => Err(vec![Issue::new(
                "model_attributes_type",
                &["body"],
                MODEL_TYPE,
                &other,
            )]),
        }
    }

    fn refuse(&mut self, name: &str, (kind, msg, ctx): Refusal, input: &Value) {
        let mut issue = Issue::new(kind, &["body", name], msg, input);
        issue.ctx = ctx;
        self.issues.push(issue);
    }

    fn missing(&mut self, name: &str) {
        let issue = Issue {
            input: self.whole.clone(),
            ..Issue::missing(&["body", name], &Value::Null)
        };
        self.issues.push(issue);
    }

    /// A required string of `min..=max` characters.
    fn string(&mut self, name: &str, min: usize, max: Option<usize>) -> Option<String> {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match self.obj.remove(name) {
            None => self.missing(name),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                let input = Value::String(s);
                if n < min {
                    let msg = format!("String should have at least {min} character{}", plural(min));
                    let ctx = serde_json::json!({ "min_length": min });
                    self.refuse(name, ("string_too_short", msg, Some(ctx)), &input);
                } else if let Some(max) = max.filter(|m| n > *m) {
                    let msg = format!("String should have at most {max} character{}", plural(max));
                    let ctx = serde_json::json!({ "max_length": max });
                    self.refuse(name, ("string_too_long", msg, Some(ctx)), &input);
                } else if let Value::String(s) = input {
                    return Some(s);
                }
            }
            Some(other) => self.refuse(name, refusal("string_type", STRING_TYPE), &other),
        }
        None
    }

    /// An optional string (`null` or absent: `None`).
    fn opt_string(&mut self, name: &str) -> Option<String> {
        match self.obj.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.refuse(name, refusal("string_type", STRING_TYPE), &other);
                None
            }
        }
    }

    /// A required integer, at most `le`.
    fn int_le(&mut self, name: &str, le: i64) -> Option<i64> {
        let Some(v) = self.obj.remove(name) else {
            self.missing(name);
            return None;
        };
        match lax_int(&v) {
            Ok(i) if i > i128::from(le) => {
                let msg = format!("Input should be less than or equal to {le}");
                let ctx = serde_json::json!({ "le": le });
                self.refuse(name, ("less_than_equal", msg, Some(ctx)), &v);
                None
            }
            Ok(i) => Some(i.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64),
            Err(r) => {
                self.refuse(name, r, &v);
                None
            }
        }
    }

    /// A boolean with a default.
    fn bool_or(&mut self, name: &str, default: bool) -> bool {
        match self.obj.remove(name) {
            None => default,
            Some(v) => lax_bool(&v).unwrap_or_else(|r| {
                self.refuse(name, r, &v);
                default
            }),
        }
    }

    fn done<T>(self, value: Option<T>) -> Result<T, Vec<Issue>> {
        match value {
            Some(v) if self.issues.is_empty() => Ok(v),
            _ => Err(self.issues),
        }
    }
}

/// A request body validated as pydantic validates its model.
pub trait FromBody: Sized {
    /// The value of `body` (parsed JSON), or every issue found.
    fn from_body(body: Value) -> Result<Self, Vec<Issue>>;

    /// Makes the registered object schema say what [`FromBody::from_body`]
    /// accepts ([`lax_schema`](super::lax_schema)).
    fn document(schema: &mut MetaSchema);
}

impl FromBody for ProcessRequest {
    fn from_body(body: Value) -> Result<Self, Vec<Issue>> {
        let mut f = Fields::of(body)?;
        let csv_base64 = f.string("csv_base64", 1, None);
        let force_calculate = f.bool_or("force_calculate", false);
        let value = csv_base64.map(|csv_base64| ProcessRequest {
            csv_base64,
            force_calculate,
        });
        f.done(value)
    }

    fn document(schema: &mut MetaSchema) {
        replace_property(schema, "force_calculate", |d| lax_bool_schema(d, false));
    }
}

impl FromBody for PlotRequest {
    fn from_body(body: Value) -> Result<Self, Vec<Issue>> {
        let mut f = Fields::of(body)?;
        let handle = f.string("handle", 8, Some(64));
        let index = f.int_le("index", 0);
        let force_calculate = f.bool_or("force_calculate", false);
        let value = handle.zip(index).map(|(handle, index)| PlotRequest {
            handle,
            index,
            force_calculate,
        });
        f.done(value)
    }

    fn document(schema: &mut MetaSchema) {
        replace_property(schema, "index", lax_int_le0_schema);
        replace_property(schema, "force_calculate", |d| lax_bool_schema(d, false));
    }
}

impl FromBody for ForecastRequest {
    fn from_body(body: Value) -> Result<Self, Vec<Issue>> {
        let mut f = Fields::of(body)?;
        let csv_base64 = f.opt_string("csv_base64");
        let handle = f.opt_string("handle");
        let force_calculate = f.bool_or("force_calculate", false);
        f.done(Some(ForecastRequest {
            csv_base64,
            handle,
            force_calculate,
        }))
    }

    /// The handler also needs exactly one of `csv_base64` and `handle`.
    fn document(schema: &mut MetaSchema) {
        replace_property(schema, "force_calculate", |d| lax_bool_schema(d, false));
        schema.one_of = exactly_one_of(&["csv_base64", "handle"]);
    }
}

/// True when FastAPI reads a body with this `Content-Type` as JSON: none
/// at all, `application/json` or `application/*+json`.
fn reads_as_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.strip_prefix("application/") {
        Some(sub) => sub == "json" || sub.ends_with("+json"),
        None => false,
    }
}

/// Python's `json` message for a serde_json error, as FastAPI puts it in
/// `ctx.error`.
fn python_json_message(e: &serde_json::Error) -> &'static str {
    let text = e.to_string();
    if text.contains("key must be a string") {
        "Expecting property name enclosed in double quotes"
    } else if text.contains("trailing characters") {
        "Extra data"
    } else if text.contains("expected `:`") {
        "Expecting ':' delimiter"
    } else if text.contains("expected `,`") {
        "Expecting ',' delimiter"
    } else if text.contains("control character") {
        "Invalid control character at"
    } else {
        "Expecting value"
    }
}

/// The body as FastAPI hands it to validation: parsed JSON, or the issue
/// FastAPI reports (`missing` for an empty body, `json_invalid` with the
/// character offset, `model_attributes_type` for a body of another type).
pub fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, Vec<Issue>> {
    if bytes.is_empty() {
        return Err(vec![Issue::missing(&["body"], &Value::Null)]);
    }
    if !reads_as_json(content_type) {
        let text = Value::String(String::from_utf8_lossy(bytes).into_owned());
        return Err(vec![Issue::new(
            "model_attributes_type",
            &["body"],
            MODEL_TYPE,
            &text,
        )]);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(bytes);
        let before: usize = text
            .split('\n')
            .take(e.line().saturating_sub(1))
            .map(|l| l.chars().count() + 1)
            .sum();
        let pos = before + e.column().saturating_sub(1);
        let issue = Issue {
            kind: "json_invalid",
            loc: vec![Value::from("body"), Value::from(pos)],
            msg: "JSON decode error".into(),
            input: Value::Object(Map::new()),
            ctx: None,
        };
        vec![issue.with_ctx(serde_json::json!({ "error": python_json_message(&e) }))]
    })
}

/// A JSON request body read as FastAPI reads it and validated in pydantic's
/// lax mode; documented with `T`'s schema as `application/json`.
pub struct LaxJson<T>(pub T);

impl<'a, T: FromBody + Type> ApiExtractor<'a> for LaxJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
        if let Some(schema) = registry.schemas.get_mut(&*T::name()) {
            T::document(schema);
        }
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = body.take()?.into_vec().await?;
        parse_body(request.content_type(), &bytes)
            .and_then(T::from_body)
            .map(LaxJson)
            .map_err(|issues| Unprocessable(issues).into())
    }
}

#[cfg(test)]
mod tests;
