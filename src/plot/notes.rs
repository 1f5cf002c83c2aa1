//! The warnings printed on a PNG or SVG chart: the processing warnings that change what the
//! forecast means, in plain words (the JSON keeps gluRPC's messages as they are).

/// The plain-words line of one warning message (`FLAG: text`), or `None` for warnings
/// that do not change what the forecast means (repeated timestamps, which are resolved
/// before the forecast).
///
/// `OLDER_SEQUENCE` says which time the forecast is about: the end of the older sequence
/// it was made from, and how far the newest data reaches.
pub fn plain_warning(message: &str) -> Option<String> {
    let (flag, text) = message.split_once(':').unwrap_or(("", message));
    let line = match flag.trim() {
        "OLDER_SEQUENCE" => older_sequence(text),
        "TOO_SHORT" => "Less data than the model needs: the forecast rests on a short history.".into(),
        "CALIBRATION" => "The data includes sensor calibrations or the 24 h after a long gap: readings there may be less accurate.".into(),
        "IMPUTATION" => "Gaps in the readings were filled by interpolation: some of what the model saw was not measured.".into(),
        "OUT_OF_RANGE" => "Some readings were beyond the sensor's range (High/Low) and stand at its limit values.".into(),
        "QUALITY" => "The data has quality issues.".into(),
        "TIME_DUPLICATES" => return None,
        _ => message.trim().to_string(),
    };
    (!line.is_empty()).then_some(line)
}

/// True when `messages` say the forecast comes from an older sequence than the newest data.
pub fn older_sequence_used(messages: &[String]) -> bool {
    messages
        .iter()
        .any(|m| m.trim_start().starts_with("OLDER_SEQUENCE"))
}

/// The plain lines of `messages`, in their order.
pub fn plain_warnings(messages: &[String]) -> Vec<String> {
    messages.iter().filter_map(|m| plain_warning(m)).collect()
}

/// `... (up to 2026-04-07T19:59) covers less than 540 minutes; using an earlier sequence
/// ending 2026-04-05T20:30` as a sentence about the forecast's time.
fn older_sequence(text: &str) -> String {
    let after = |key: &str| -> Option<String> {
        let rest = &text[text.find(key)? + key.len()..];
        let stamp: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | 'T'))
            .collect();
        (stamp.len() >= 16).then(|| stamp.replacen('T', " ", 1))
    };
    match (after("ending "), after("up to ")) {
        (Some(end), Some(latest)) => format!(
            "Forecast from an older sequence ending {end}: the newest data (up to {latest}) is too short to forecast from."
        ),
        (Some(end), None) => format!(
            "Forecast from an older sequence ending {end}: the newest data is too short to forecast from."
        ),
        _ => {
            "Forecast from an older sequence: the newest data is too short to forecast from.".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_sequence_names_its_times() {
        let m = "OLDER_SEQUENCE: The most recent data (up to 2026-04-07T19:59) covers less than 540 minutes; using an earlier sequence ending 2026-04-05T20:30";
        assert_eq!(
            plain_warning(m).as_deref(),
            Some(
                "Forecast from an older sequence ending 2026-04-05 20:30: the newest data (up to 2026-04-07 19:59) is too short to forecast from."
            )
        );
        assert!(
            plain_warning("OLDER_SEQUENCE: something else")
                .is_some_and(|l| l.starts_with("Forecast from an older sequence:"))
        );
    }

    #[test]
    fn flags_in_plain_words() {
        let lines = plain_warnings(&[
            "IMPUTATION: Contains imputed gaps".into(),
            "TIME_DUPLICATES: Sequence contains non-unique time entries".into(),
            "OUT_OF_RANGE: Contains out-of-range values".into(),
            "Something new".into(),
        ]);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("Gaps in the readings were filled"));
        assert!(lines[1].contains("High/Low"));
        assert_eq!(lines[2], "Something new");
    }
}
