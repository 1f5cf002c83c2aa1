//! The reference's Plotly figure (gluRPC 0.6.3 `calculate_plot_data`, datetime x axis),
//! written as plotly 5.24.1's `fig.to_json()` writes it: compact separators, keys in
//! plotly's order, floats as Python's `repr`, `/`, `<`, `>` escaped, and the full
//! `plotly_white` template.

use super::pyfmt::{
    iso_millis, push_iso_micros, push_json_float, push_json_str, timedelta_minutes_micros,
};
use super::{PlotData, TIME_STEP_MINUTES, fan_color, kde_fan, median_line, step_samples};

/// `layout.template`: plotly 5.24.1's `plotly_white`, exactly as `fig.to_json()` writes it.
const TEMPLATE: &str = include_str!("plotly_white_template.json");

/// `xaxis.dtick`: ten minutes in ms.
const DTICK_MS: i64 = 600_000;

/// The Plotly figure JSON of `data`, the same text the reference's `fig.to_json()` gives.
///
/// Traces in order: one fan per horizon step that is not skipped (`fill: "tonexty"`,
/// 400 points: the step's time 200 times, then the time moved left by `density * 4.5`
/// minutes, with the KDE grid up and back down), "True Values" (blue, the last history
/// points and the measured values) and "Median Forecast" (red, the last history point and
/// the medians). Does not validate: call [`super::validate`] (or use [`super::render`])
/// first; with bad input the output is still well-formed JSON (non-finite numbers and
/// unwritable times become `null`).
pub fn plotly_json(data: &PlotData) -> String {
    let horizon = data.forecast_times.len();
    let mut out = String::with_capacity(230_000);
    out.push_str("{\"data\":[");
    let mut first = true;
    for (p, &t) in data.forecast_times.iter().enumerate() {
        let Some((grid, density)) = kde_fan(&step_samples(data, p)) else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        push_fan(&mut out, t, &grid, &density, &fan_color(p, horizon).0);
    }
    let (true_t, true_v) = super::true_values(data);
    let (med_t, med_v) = median_line(data);
    for (color, size, name, times, values) in [
        ("blue", 6, "True Values", &true_t, &true_v),
        ("red", 8, "Median Forecast", &med_t, &med_v),
    ] {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str("{\"line\":{\"color\":");
        push_json_str(&mut out, color);
        out.push_str(&format!(",\"width\":2}},\"marker\":{{\"size\":{size}}},"));
        out.push_str("\"mode\":\"lines+markers\",\"name\":");
        push_json_str(&mut out, name);
        out.push_str(",\"x\":[");
        push_list(&mut out, times.iter().map(|&t| iso_millis(t)), push_opt_str);
        out.push_str("],\"y\":[");
        push_list(&mut out, values.iter().copied(), push_json_float);
        out.push_str("],\"type\":\"scatter\"}");
    }
    out.push_str("],\"layout\":{\"template\":");
    out.push_str(TEMPLATE.trim());
    out.push_str(",\"xaxis\":{\"title\":{\"text\":\"Time\"},\"tick0\":");
    push_opt_str(
        &mut out,
        data.history_times.last().and_then(|&t| iso_millis(t)),
    );
    out.push_str(&format!(",\"dtick\":{DTICK_MS},\"tickformat\":"));
    push_json_str(&mut out, "%H:%M\n%b %d");
    out.push_str(",\"gridcolor\":\"lightgray\",\"showgrid\":true},");
    out.push_str("\"title\":{\"text\":\"Gluformer Prediction\"},");
    out.push_str("\"yaxis\":{\"title\":{\"text\":");
    push_json_str(&mut out, "Glucose (mg/dL)");
    out.push_str(&format!(
        "}}}},\"width\":{},\"height\":{}}}}}",
        super::WIDTH,
        super::HEIGHT
    ));
    out
}

/// One fan trace at time `t_ms`: keys fill, fillcolor, hoverinfo, line, showlegend, x, y, type.
fn push_fan(out: &mut String, t_ms: i64, grid: &[f64], density: &[f64], color: &str) {
    out.push_str("{\"fill\":\"tonexty\",\"fillcolor\":");
    push_json_str(out, color);
    out.push_str(",\"hoverinfo\":\"skip\",\"line\":{\"color\":\"rgba(0,0,0,0)\"},");
    out.push_str("\"showlegend\":false,\"x\":[");
    // the step's time 200 times, then (time_coord - timedelta(minutes=density * 0.9 *
    // time_step)).isoformat() reversed; ISO strings need no JSON escaping
    let t_us = t_ms.saturating_mul(1000);
    let mut centre = String::with_capacity(28);
    centre.push('"');
    if push_iso_micros(&mut centre, t_us) {
        centre.push('"');
    } else {
        centre = "null".to_string();
    }
    for i in 0..grid.len() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&centre);
    }
    for (i, &d) in density.iter().rev().enumerate() {
        if i > 0 || !grid.is_empty() {
            out.push(',');
        }
        let offset = d * (0.9 * TIME_STEP_MINUTES);
        let at = out.len();
        out.push('"');
        if offset.is_finite()
            && offset >= 0.0
            && push_iso_micros(out, t_us.saturating_sub(timedelta_minutes_micros(offset)))
        {
            out.push('"');
        } else {
            out.truncate(at);
            out.push_str("null");
        }
    }
    out.push_str("],\"y\":[");
    push_list(
        out,
        grid.iter().chain(grid.iter().rev()).copied(),
        push_json_float,
    );
    out.push_str("],\"type\":\"scatter\"}");
}

/// A string, or `null` for `None`.
fn push_opt_str(out: &mut String, s: Option<String>) {
    match s {
        Some(s) => push_json_str(out, &s),
        None => out.push_str("null"),
    }
}

/// Comma-separated items.
fn push_list<T>(out: &mut String, items: impl Iterator<Item = T>, push: fn(&mut String, T)) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push(out, item);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::window;
    use super::*;

    #[test]
    fn parses_and_has_the_traces() {
        let text = plotly_json(&window(true));
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let traces = v["data"].as_array().expect("data");
        assert_eq!(traces.len(), 14);
        assert_eq!(traces[12]["name"], "True Values");
        assert_eq!(traces[12]["x"].as_array().map(Vec::len), Some(24));
        assert_eq!(traces[13]["name"], "Median Forecast");
        assert_eq!(traces[13]["y"].as_array().map(Vec::len), Some(13));
        assert_eq!(traces[0]["x"].as_array().map(Vec::len), Some(400));
        assert_eq!(v["layout"]["xaxis"]["tick0"], "2024-05-01T07:55:00");
        assert!(text.contains("\"Glucose (mg\\u002fdL)\""));
        assert!(text.ends_with("\"width\":1000,\"height\":600}}"));
    }

    #[test]
    fn forward_forecast_has_history_only() {
        let v: serde_json::Value =
            serde_json::from_str(&plotly_json(&window(false))).expect("valid JSON");
        let traces = v["data"].as_array().expect("data");
        assert_eq!(traces[12]["x"].as_array().map(Vec::len), Some(12));
        assert_eq!(traces[12]["x"][11], "2024-05-01T07:55:00");
    }

    #[test]
    fn bad_input_still_gives_json() {
        let mut d = window(true);
        d.samples[0].truncate(3);
        d.history[95] = f64::NAN;
        d.history_times.truncate(10);
        d.forecast_times[2] = i64::MAX;
        let v: Result<serde_json::Value, _> = serde_json::from_str(&plotly_json(&d));
        assert!(v.is_ok());
    }
}
