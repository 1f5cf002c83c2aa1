//! The unified table as a polars `DataFrame` with the cgm-format 0.13.0 dtypes
//! (Int64, naive `Datetime(ms)`, Float64, String), and back.

use polars::prelude::*;

use super::table::{EventType, Row, UNIFIED_COLUMNS, UnifiedTable};

impl UnifiedTable {
    /// Builds the polars `DataFrame` of this table (schema order and dtypes of
    /// cgm-format's `CGM_SCHEMA`).
    pub fn to_dataframe(&self) -> PolarsResult<DataFrame> {
        let rows = self.rows();
        let ints = |name: &str, f: fn(&Row) -> Option<i64>| -> Column {
            Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()).into()
        };
        let floats = |name: &str, f: fn(&Row) -> Option<f64>| -> Column {
            Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()).into()
        };
        let times = |name: &str, f: fn(&Row) -> Option<i64>| -> Column {
            Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
                .into_datetime(TimeUnit::Milliseconds, None)
                .into()
        };
        let events: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.event_type.as_ref().map(EventType::as_str))
            .collect();
        let columns = vec![
            ints(UNIFIED_COLUMNS[0], |r| r.sequence_id),
            times(UNIFIED_COLUMNS[1], |r| r.original_datetime),
            floats(UNIFIED_COLUMNS[2], |r| r.original_glucose),
            ints(UNIFIED_COLUMNS[3], |r| r.quality),
            Series::new(UNIFIED_COLUMNS[4].into(), events).into(),
            times(UNIFIED_COLUMNS[5], |r| r.datetime),
            floats(UNIFIED_COLUMNS[6], |r| r.glucose),
            floats(UNIFIED_COLUMNS[7], |r| r.carbs),
            floats(UNIFIED_COLUMNS[8], |r| r.insulin_slow),
            floats(UNIFIED_COLUMNS[9], |r| r.insulin_fast),
            ints(UNIFIED_COLUMNS[10], |r| r.exercise),
        ];
        DataFrame::new(rows.len(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::table::Row;

    #[test]
    fn polars_csv_writer_gives_the_same_text() {
        let mut a = Row::event(EventType::Glucose, 1_571_071_357_000, 1);
        a.glucose = Some(6.4 * 18.0182);
        let mut b = Row::event(EventType::InsulinFast, 1_571_071_357_000, 0);
        b.insulin_fast = Some(2.5);
        let mut c = Row::event(EventType::ExerciseLight, 1_571_071_400_000, 0);
        c.exercise = Some(1800);
        let t = UnifiedTable::from_rows(vec![a, b, c], true);
        let mut df = t.to_dataframe().unwrap();
        assert_eq!(df.height(), 3);
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, UNIFIED_COLUMNS.to_vec());
        let mut buf = Vec::new();
        CsvWriter::new(&mut buf).finish(&mut df).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), t.to_csv());
    }
}
