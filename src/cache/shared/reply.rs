//! Reading the pull script's reply (`{position, {id, payload, reclaimed,
//! lease taken, check exists, ...}}` or `{-1}`, in RESP2 or RESP3 shapes)
//! into work items.

use redis::Value;

use super::{Pulled, SharedError};

/// The work items of a pull over the streams of `priorities`.
pub(super) fn pulled(reply: &Value, priorities: &[u8]) -> Result<Vec<Pulled>, SharedError> {
    let bad = |what: &str| SharedError::Redis(format!("pull: the script's reply {what}"));
    let Value::Array(parts) = reply else {
        return Err(bad("is not a list"));
    };
    let at = match parts.first() {
        Some(Value::Int(i)) if *i < 0 => return Ok(Vec::new()),
        Some(Value::Int(i)) => *i as usize,
        _ => return Err(bad("has no position")),
    };
    let Some(&priority) = priorities.get(at) else {
        return Err(bad("names no stream pulled"));
    };
    let Some(Value::Array(flat)) = parts.get(1) else {
        return Err(bad("has no items"));
    };
    if flat.len() % 5 != 0 {
        return Err(bad("has an incomplete item"));
    }
    flat.chunks(5)
        .map(|item| {
            let (Some(id), Some(payload)) = (text(&item[0]), text(&item[1])) else {
                return Err(bad("has an item without id or payload"));
            };
            let flag = |v: &Value| match v {
                Value::Int(n) => Ok(*n),
                _ => Err(bad("has an item without flags")),
            };
            let (reclaimed, taken, exists) = (flag(&item[2])?, flag(&item[3])?, flag(&item[4])?);
            Ok(Pulled {
                priority,
                id,
                payload,
                reclaimed: reclaimed == 1,
                lease: (taken >= 0).then_some((taken == 1, exists > 0)),
            })
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
