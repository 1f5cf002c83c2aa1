//! What the OpenAPI document says about the values read leniently, so that
//! the document matches what is served: pydantic's lax `int` and `bool`
//! ([`lax`](super::lax)) as `anyOf` a JSON type and the strings accepted
//! (regular expressions that both ECMA-262 and Python's `re` read), and the
//! query parameters `action` and `units` with exactly the values the
//! handlers take. Unit tests check each pattern against the parser it
//! describes on every short string of a small alphabet.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use serde_json::Value;

/// Unicode `White_Space`, the characters Rust's `str::trim` (and so
/// pydantic-core's) removes.
const WS: &str = r"[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// End of input: `$` alone also matches before a final newline in Python.
const END: &str = r"(?!\n)$";

/// Strings pydantic's lax `int` reads as an integer at most 0: optional
/// surrounding whitespace, a `+` or `-`, leading zeros, `_` between digits,
/// an all-zero fraction (`-1.0`), and pydantic-core's quirk of reading
/// `0-5` as -5 (`strip_leading_zeros`).
pub fn int_le0_string_pattern() -> String {
    let positive = r"[1-9](?:_?[0-9])*(?:\.0+)?";
    let zero = r"0(?:[0_]*0)?(?:\.0+)?";
    let quirk = r"0[0_]*-_?(?:0|[1-9](?:_?[0-9])*)(?:\.0+)?";
    format!(r"^{WS}*(?:\+?(?:{zero}|{quirk})|-(?:{zero}|(?:0[0_]*)?{positive})){WS}*{END}")
}

/// Strings pydantic's lax `bool` reads: `0`, `1` and, in any letter case,
/// `f`, `n`, `no`, `off`, `false`, `t`, `y`, `on`, `yes`, `true`.
pub fn bool_string_pattern() -> String {
    let words = [
        "f", "n", "no", "off", "false", "t", "y", "on", "yes", "true",
    ];
    let any_case = |w: &str| -> String {
        w.chars()
            .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c))
            .collect()
    };
    let alternatives: Vec<String> = words.iter().map(|w| any_case(w)).collect();
    format!("^(?:0|1|{}){END}", alternatives.join("|"))
}

/// The `units` query parameter: empty (the export's own unit), or `mg/dL`
/// or `mmol/L` in any letter case, with or without `/`, `_`, `-`, spaces
/// and the `/dL` or `/L` ([`crate::plot::Units`]'s `FromStr`).
pub fn units_pattern() -> String {
    let sep = "[/_ -]*";
    let mgdl = format!("[Mm]{sep}[Gg](?:{sep}[Dd]{sep}[Ll])?");
    let mmoll = format!("[Mm]{sep}[Mm]{sep}[Oo]{sep}[Ll](?:{sep}[Ll])?");
    format!("^(?:{WS}*|{WS}*{sep}(?:{mgdl}|{mmoll}){sep}{WS}*){END}")
}

/// The cache actions `/cache_management` takes.
pub const CACHE_ACTIONS: [&str; 5] = ["flush", "info", "delete", "save", "load"];

fn inline(schema: MetaSchema) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(schema))
}

fn string_matching(pattern: String, max_length: Option<usize>) -> MetaSchemaRef {
    inline(MetaSchema {
        pattern: Some(pattern),
        max_length,
        ..MetaSchema::new("string")
    })
}

/// A lax `bool` field: a boolean, 0 or 1 (also `0.0`, `1.0`), or one of
/// the strings of [`bool_string_pattern`].
pub fn lax_bool_schema(description: Option<&'static str>, default: bool) -> MetaSchemaRef {
    inline(MetaSchema {
        description,
        default: Some(Value::Bool(default)),
        any_of: vec![
            inline(MetaSchema::new("boolean")),
            inline(MetaSchema {
                enum_items: vec![0.into(), 1.into()],
                ..MetaSchema::new("number")
            }),
            string_matching(bool_string_pattern(), None),
        ],
        ..MetaSchema::ANY
    })
}

/// A lax `int` field at most 0: an integer, an integral number, `false`,
/// or one of the strings of [`int_le0_string_pattern`] (pydantic reads at
/// most 4300 characters). Values below -2^63 are read as -2^63.
pub fn lax_int_le0_schema(description: Option<&'static str>) -> MetaSchemaRef {
    inline(MetaSchema {
        description,
        any_of: vec![
            inline(MetaSchema {
                maximum: Some(0.0),
                ..MetaSchema::new("integer")
            }),
            inline(MetaSchema {
                maximum: Some(0.0),
                multiple_of: Some(1.0),
                ..MetaSchema::new("number")
            }),
            inline(MetaSchema {
                enum_items: vec![Value::Bool(false)],
                ..MetaSchema::new("boolean")
            }),
            string_matching(int_le0_string_pattern(), Some(4300)),
        ],
        ..MetaSchema::ANY
    })
}

/// Exactly one of the string fields `names` (present and not `null`).
pub fn exactly_one_of(names: &[&'static str]) -> Vec<MetaSchemaRef> {
    names
        .iter()
        .map(|name| {
            inline(MetaSchema {
                required: vec![name],
                properties: vec![(*name, inline(MetaSchema::new("string")))],
                ..MetaSchema::new("object")
            })
        })
        .collect()
}

/// Replaces property `name` of an object schema by what `make` builds from
/// its description.
pub fn replace_property(
    schema: &mut MetaSchema,
    name: &str,
    make: impl FnOnce(Option<&'static str>) -> MetaSchemaRef,
) {
    if let Some((_, prop)) = schema.properties.iter_mut().find(|(n, _)| *n == name) {
        let description = match prop {
            MetaSchemaRef::Inline(s) => s.description,
            MetaSchemaRef::Reference(_) => None,
        };
        *prop = make(description);
    }
}

#[cfg(test)]
mod tests;
