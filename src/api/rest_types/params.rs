//! Query parameters taken as any string (the handlers answer an unknown
//! value with the reference's 400) but documented with the values that are
//! served: `action` as an enumeration, `units` as a pattern.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};

use super::lax_schema::{CACHE_ACTIONS, units_pattern};

/// Implements `Type` and `ParseFromParameter` for a `String` newtype with
/// the schema `$schema`.
macro_rules! documented_string {
    ($ty:ident, $name:literal, $schema:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromParameter for $ty {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Ok($ty(value.to_string()))
            }
        }
    };
}

/// `/cache_management?action=`: one of [`CACHE_ACTIONS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionParam(pub String);

documented_string!(
    ActionParam,
    "string(action)",
    MetaSchema {
        enum_items: CACHE_ACTIONS.iter().map(|a| (*a).into()).collect(),
        ..MetaSchema::new("string")
    }
);

/// `units=`: `mg/dL` or `mmol/L`, leniently spelled ([`units_pattern`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitsParam(pub String);

documented_string!(
    UnitsParam,
    "string(units)",
    MetaSchema {
        pattern: Some(units_pattern()),
        example: Some("mmol/L".into()),
        ..MetaSchema::new("string")
    }
);
