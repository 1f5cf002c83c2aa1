//! How windows and forecasts are named and stored in Redis: a window's
//! name (`{handle}:{kind}:{target}`, in keys and work items) and a
//! forecast's bytes.

use crate::engine::forecast::{Target, WindowForecast, WindowKey};
use crate::engine::upload::WindowKind;

/// `{handle}:{kind}:{target}`: a window's name in keys and work items.
pub(crate) fn window_name(key: &WindowKey) -> String {
    let target = match key.target {
        Target::Index(i) => i.to_string(),
        Target::Forward => "fwd".into(),
    };
    format!("{}:{}:{target}", key.handle, key.kind.as_str())
}

/// The window a name of [`window_name`] names.
pub(crate) fn parse_window(name: &str) -> Option<WindowKey> {
    let mut it = name.rsplitn(3, ':');
    let target = match it.next()? {
        "fwd" => Target::Forward,
        i => Target::Index(i.parse().ok()?),
    };
    let kind = WindowKind::ALL
        .into_iter()
        .find(|k| Some(k.as_str()) == it.clone().next())?;
    it.next();
    let handle = it.next()?.to_string();
    Some(WindowKey {
        handle,
        kind,
        target,
    })
}

/// A forecast as stored: `steps`, `samples` (u32 LE), then the values and
/// log-variances (f32 LE).
pub(crate) fn encode_forecast(f: &WindowForecast) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 * (f.values.len() + f.logvar.len()));
    out.extend_from_slice(&(f.steps as u32).to_le_bytes());
    out.extend_from_slice(&(f.samples as u32).to_le_bytes());
    for v in f.values.iter().chain(&f.logvar) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub(crate) fn decode_forecast(b: &[u8], version: u64) -> Option<WindowForecast> {
    let word = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let (steps, samples) = (word(0)? as usize, word(4)? as usize);
    let floats: Vec<f32> = b
        .get(8..)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if floats.len() != steps * samples + samples {
        return None;
    }
    let (values, logvar) = floats.split_at(steps * samples);
    Some(WindowForecast {
        version,
        steps,
        samples,
        values: values.to_vec(),
        logvar: logvar.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_names_and_forecasts_round_trip() {
        for target in [Target::Index(0), Target::Index(-109), Target::Forward] {
            let key = WindowKey {
                handle: "ab12".into(),
                kind: WindowKind::Quick,
                target,
            };
            assert_eq!(parse_window(&window_name(&key)), Some(key));
        }
        assert_eq!(parse_window("nonsense"), None);
        let f = WindowForecast {
            version: 3,
            steps: 2,
            samples: 3,
            values: vec![0.5, 1.5, 2.5, -1.0, 0.0, 7.25],
            logvar: vec![0.1, 0.2, 0.3],
        };
        assert_eq!(decode_forecast(&encode_forecast(&f), 3), Some(f.clone()));
        assert_eq!(decode_forecast(&encode_forecast(&f)[..20], 3), None);
    }
}
