//! Training and evaluation data: people (one per CGM export, or one per id
//! of a long `id,time,gl` table), their glucose on the 5-minute grid as the
//! service prepares an upload, and forward-forecast examples cut from it
//! exactly as the service would see them (scaler fitted on the history only).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDateTime;

use crate::bridge::model_window;
use crate::formats::{self, EventType, Row, UnifiedTable, table::to_millis};
use crate::model::ModelWindow;
use crate::pipeline::dataset::{INPUT_LEN, MinMax, OUTPUT_LEN, STEP_MS};
use crate::pipeline::{self, Dataset, window};

use super::TrainError;

/// Fewest history points of an example: the 540-minute minimum window.
pub const MIN_HISTORY: usize = 109;
/// Most history points: the 1080-minute full window.
pub const MAX_HISTORY: usize = 217;

/// One person's glucose: runs of consecutive 5-minute grid points with a value.
#[derive(Debug, Clone)]
pub struct Person {
    /// File name, or file name and id for a long table.
    pub name: String,
    /// Runs of (time ms, mg/dL), each on an unbroken 5-minute grid.
    pub runs: Vec<Vec<(i64, f32)>>,
}

impl Person {
    /// Grid points over all runs.
    pub fn points(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    /// Every example position: (run, index of the last history point) with
    /// at least [`MIN_HISTORY`] points before and 12 measured points after.
    pub fn positions(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (r, run) in self.runs.iter().enumerate() {
            if run.len() < MIN_HISTORY + OUTPUT_LEN {
                continue;
            }
            out.extend((MIN_HISTORY - 1..run.len() - OUTPUT_LEN).map(|end| (r, end)));
        }
        out
    }
}

/// A forward-forecast example: the model's window, the scaled truth and the
/// scaler that maps forecasts back to mg/dL.
#[derive(Debug, Clone)]
pub struct Example {
    /// The model input.
    pub window: ModelWindow,
    /// The 12 measured values after the history, scaled.
    pub target: Vec<f32>,
    /// The same values in mg/dL.
    pub truth: Vec<f32>,
    /// The last history values in mg/dL (for the baselines), oldest first.
    pub recent: Vec<f32>,
    /// The glucose scaler fitted on the history.
    pub scaler: MinMax,
}

/// Cuts the example whose history ends at `run[end]` and spans `history`
/// points (clamped to what the run holds): the upload a user would send at
/// that time, prepared as the service prepares it.
pub fn example(
    run: &[(i64, f32)],
    end: usize,
    history: usize,
    seed: u64,
) -> Result<Example, TrainError> {
    let start = (end + 1).saturating_sub(history.max(INPUT_LEN));
    let series: Vec<(i64, Option<f64>)> = run[start..=end]
        .iter()
        .map(|(t, g)| (*t, Some(*g as f64)))
        .collect();
    let dataset = Dataset::build(&series).map_err(|e| TrainError::Data(e.to_string()))?;
    let inputs = dataset
        .forward()
        .map_err(|e| TrainError::Data(e.to_string()))?;
    let scaler = dataset.target_scaler.clone();
    let truth: Vec<f32> = run[end + 1..end + 1 + OUTPUT_LEN]
        .iter()
        .map(|p| p.1)
        .collect();
    Ok(Example {
        window: model_window(&inputs, seed),
        target: truth.iter().map(|g| scaler.apply(0, *g)).collect(),
        truth,
        recent: run[end + 1 - 7..=end].iter().map(|p| p.1).collect(),
        scaler,
    })
}

/// Reads the people in `path`: a long `id,time,gl` table (one person per
/// id) or any CGM export the ingestion reads (one person).
pub fn load_people(path: &Path) -> Result<Vec<Person>, TrainError> {
    let bytes =
        std::fs::read(path).map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))?;
    let raw = formats::decode::decompress(&bytes, 1 << 40)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    let text = formats::decode::decode_text(&raw)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(people) = long_table(&name, &text)? {
        return Ok(people);
    }
    let parsed = formats::parse_text(&text)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    Ok(vec![person(name, &parsed.table)])
}

/// A person from a parsed table: sequences, interpolation and the grid as
/// the service runs them, then runs of consecutive grid points.
pub fn person(name: String, table: &UnifiedTable) -> Person {
    let processed = pipeline::process(table);
    let mut by_seq: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
    for r in processed {
        by_seq
            .entry(r.sequence_id.unwrap_or(0))
            .or_default()
            .push(r);
    }
    let mut runs = Vec::new();
    for rows in by_seq.values() {
        let mut run: Vec<(i64, f32)> = Vec::new();
        for (t, g) in window::glucose_series(rows) {
            let unbroken = run.last().is_none_or(|(p, _)| t - p == STEP_MS);
            match g {
                Some(g) if g.is_finite() && unbroken => run.push((t, g as f32)),
                Some(g) if g.is_finite() => {
                    runs.push(std::mem::take(&mut run));
                    run.push((t, g as f32));
                }
                _ => runs.push(std::mem::take(&mut run)),
            }
        }
        runs.push(run);
    }
    runs.retain(|r| !r.is_empty());
    Person { name, runs }
}

/// Parses a long table with `id`, `time` and `gl` columns (other columns,
/// such as an unnamed row number, ignored); `None` when the header lacks them.
fn long_table(name: &str, text: &str) -> Result<Option<Vec<Person>>, TrainError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(_) => return Ok(None),
    };
    let col = |n: &str| header.iter().position(|h| h.trim() == n);
    let (Some(id), Some(time), Some(gl)) = (col("id"), col("time"), col("gl")) else {
        return Ok(None);
    };
    let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for (line, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| TrainError::Data(format!("{name}: {e}")))?;
        let field = |i: usize| rec.get(i).unwrap_or("").trim();
        let t = parse_time(field(time)).ok_or_else(|| {
            TrainError::Data(format!(
                "{name} row {}: bad time {:?}",
                line + 2,
                field(time)
            ))
        })?;
        let Ok(g) = field(gl).parse::<f64>() else {
            continue; // NA or empty readings are gaps
        };
        let mut row = Row::event(EventType::Glucose, to_millis(t), 0);
        row.glucose = Some(g);
        row.original_glucose = Some(g);
        rows.entry(field(id).to_string()).or_default().push(row);
    }
    if rows.is_empty() {
        return Err(TrainError::Data(format!("{name}: no readings")));
    }
    Ok(Some(
        rows.into_iter()
            .map(|(id, r)| person(format!("{name}#{id}"), &UnifiedTable::from_rows(r, true)))
            .collect(),
    ))
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tables_give_one_person_per_id_on_the_grid() {
        let mut text = String::from("\"\",\"id\",\"time\",\"gl\",\"diagnosis\"\n");
        for (i, id) in ["a", "b"].iter().enumerate() {
            for k in 0..150 {
                let minutes = k * 5 + i;
                text.push_str(&format!(
                    "{k},\"{id}\",2020-01-01 {:02}:{:02}:00,{},x\n",
                    minutes / 60,
                    minutes % 60,
                    100 + k % 7
                ));
            }
        }
        text.push_str("999,\"b\",2020-01-01 23:00:00,NA,x\n");
        let people = long_table("t.csv", &text).unwrap().unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].name, "t.csv#a");
        assert_eq!(people[0].points(), 150);
        assert_eq!(people[0].runs.len(), 1);
        let pos = people[1].positions();
        assert_eq!(pos.len(), 150 - MIN_HISTORY - OUTPUT_LEN + 1);
        let (r, end) = pos[0];
        let ex = example(&people[1].runs[r], end, MAX_HISTORY, 7).unwrap();
        assert_eq!(ex.window.past.len(), INPUT_LEN);
        assert_eq!(ex.truth.len(), OUTPUT_LEN);
        assert_eq!(ex.truth[0], people[1].runs[r][end + 1].1);
        assert!(long_table("x", "a,b\n1,2\n").unwrap().is_none());
    }
}
