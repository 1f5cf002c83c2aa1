//! Reading the work streams' replies (`XAUTOCLAIM`, `XREADGROUP`, in RESP2
//! or RESP3 shapes) into work items.

use redis::Value;

use super::Pulled;

/// `[[id, [field, value, ...]], ...]` at `value[at]` (XAUTOCLAIM's reply
/// holds them at 1) as work items.
pub(super) fn entries(value: &Value, at: usize, priority: u8, reclaimed: bool) -> Vec<Pulled> {
    let Value::Array(parts) = value else {
        return Vec::new();
    };
    let Some(Value::Array(list)) = parts.get(at) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| entry(e, priority, reclaimed))
        .collect()
}

/// XREADGROUP's reply (`[[stream, [[id, fields], ...]]]`, or nil).
pub(super) fn read_entries(value: &Value, priority: u8) -> Vec<Pulled> {
    match value {
        Value::Array(streams) => streams
            .iter()
            .flat_map(|s| entries(s, 1, priority, false))
            .collect(),
        Value::Map(streams) => streams
            .iter()
            .flat_map(|(_, list)| match list {
                Value::Array(l) => l.iter().filter_map(|e| entry(e, priority, false)).collect(),
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn entry(e: &Value, priority: u8, reclaimed: bool) -> Option<Pulled> {
    let Value::Array(pair) = e else { return None };
    let id = text(pair.first()?)?;
    let payload = match pair.get(1)? {
        Value::Array(fields) => fields.chunks(2).find_map(|kv| match kv {
            [k, v] if text(k).as_deref() == Some("w") => text(v),
            _ => None,
        })?,
        _ => return None,
    };
    Some(Pulled {
        priority,
        id,
        payload,
        reclaimed,
    })
}
