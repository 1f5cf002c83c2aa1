//! What a chart must say about its numbers and times: the glucose unit it is drawn in
//! ([`Units`]), the clock its times are on ([`Clock`]), and what an upload tells about both
//! ([`Origin`]).
//!
//! The engine keeps every value in mg/dL. A chart in mmol/L divides by
//! [`MGDL_PER_MMOL`] = 18.0182, the factor the ingestion multiplies mmol/L exports by, so an
//! mmol/L export is drawn with the very numbers it holds (6.3 stays 6.3).

use std::fmt;
use std::str::FromStr;

use crate::formats::{Format, UnifiedTable};

use super::PlotError;

/// mg/dL per mmol/L: cgm-format's factor ([`crate::formats::MMOL_TO_MGDL`]).
pub const MGDL_PER_MMOL: f64 = crate::formats::MMOL_TO_MGDL;

/// The glucose unit a chart is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Units {
    /// Milligrams per decilitre (the engine's unit).
    #[default]
    MgDl,
    /// Millimoles per litre (mg/dL divided by [`MGDL_PER_MMOL`]).
    MmolL,
}

impl Units {
    /// The unit as written on a chart: `mg/dL` or `mmol/L`.
    pub fn label(self) -> &'static str {
        match self {
            Units::MgDl => "mg/dL",
            Units::MmolL => "mmol/L",
        }
    }

    /// A value in mg/dL expressed in this unit.
    pub fn from_mgdl(self, mgdl: f64) -> f64 {
        match self {
            Units::MgDl => mgdl,
            Units::MmolL => mgdl / MGDL_PER_MMOL,
        }
    }

    /// The target range in this unit: 70-180 mg/dL, 3.9-10.0 mmol/L (the consensus
    /// time-in-range limits as each unit writes them).
    pub fn target_range(self) -> (f64, f64) {
        match self {
            Units::MgDl => (70.0, 180.0),
            Units::MmolL => (3.9, 10.0),
        }
    }

    /// The target range as text, e.g. `70–180 mg/dL`.
    pub fn target_text(self) -> String {
        let (lo, hi) = self.target_range();
        match self {
            Units::MgDl => format!("{lo:.0}–{hi:.0} {}", self.label()),
            Units::MmolL => format!("{lo:.1}–{hi:.1} {}", self.label()),
        }
    }
}

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Units {
    type Err = PlotError;

    /// `mg/dL` or `mmol/L`, in any letter case, with or without the slash, underscore or
    /// `/L`/`/dL` (`mgdl`, `mg_dl`, `mg`, `mmol`, `mmoll`, `mmol_l`, ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, '/' | '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "mgdl" | "mg" => Ok(Units::MgDl),
            "mmoll" | "mmol" => Ok(Units::MmolL),
            _ => Err(PlotError::UnknownUnits(s.to_string())),
        }
    }
}

/// The clock an upload's times are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Clock {
    /// The local wall clock of the device or app that exported the file (Dexcom Clarity,
    /// LibreView, CareLink and the Nightscout exporter write local times without a zone).
    Local,
    /// UTC (Nightscout API JSON: the ingestion converts its times to UTC).
    Utc,
    /// Not known: a unified CSV carries no zone, so its times are shown as they are.
    #[default]
    Unknown,
}

impl Clock {
    /// The lower-case name (`local`, `utc`, `unknown`; [`Clock::from_name`] reads it back).
    pub fn name(self) -> &'static str {
        match self {
            Clock::Local => "local",
            Clock::Utc => "utc",
            Clock::Unknown => "unknown",
        }
    }

    /// The clock of a [`Clock::name`].
    pub fn from_name(name: &str) -> Option<Clock> {
        match name {
            "local" => Some(Clock::Local),
            "utc" => Some(Clock::Utc),
            "unknown" => Some(Clock::Unknown),
            _ => None,
        }
    }

    /// What the time axis says about the clock, e.g. `UTC`.
    pub fn label(self) -> &'static str {
        match self {
            Clock::Local => "local time of the export",
            Clock::Utc => "UTC",
            Clock::Unknown => "as in the upload, timezone not stated",
        }
    }
}

/// What an upload says about its unit and clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    /// The unit the export was written in (the chart's default unit).
    pub units: Units,
    /// The clock its times are on.
    pub clock: Clock,
}

impl Origin {
    /// `{"units": "mmol/L", "clock": "utc"}`: how disk records keep it.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({ "units": self.units.label(), "clock": self.clock.name() })
    }

    /// An origin written by [`Origin::to_json`].
    pub fn from_json(v: &serde_json::Value) -> Option<Origin> {
        Some(Origin {
            units: v.get("units")?.as_str()?.parse().ok()?,
            clock: Clock::from_name(v.get("clock")?.as_str()?)?,
        })
    }

    /// The origin of an upload of `format` parsed into `table`. Dexcom and Libre EU exports
    /// are mmol/L; Nightscout API JSON is UTC; other exports are local time. A unified CSV
    /// names neither: its clock is unknown and its unit is read from its values
    /// ([`units_of_values`]).
    pub fn of(format: Format, table: &UnifiedTable) -> Origin {
        let clock = match format {
            Format::NightscoutJson => Clock::Utc,
            Format::Unified | Format::UnifiedExtended => Clock::Unknown,
            _ => Clock::Local,
        };
        let units = match format {
            Format::DexcomEu | Format::LibreEu => Units::MmolL,
            Format::Unified | Format::UnifiedExtended => {
                units_of_values(table.rows().iter().filter_map(|r| r.glucose))
            }
            _ => Units::MgDl,
        };
        Origin { units, clock }
    }
}

/// True when `mgdl` is an mmol/L reading of at most two decimals converted by
/// [`MGDL_PER_MMOL`] (6.3 mmol/L is 113.51466 mg/dL); whole mg/dL values never are,
/// except 0.
fn from_mmol(mgdl: f64) -> bool {
    let hundredths = mgdl / MGDL_PER_MMOL * 100.0;
    mgdl > 0.0 && mgdl.fract() != 0.0 && (hundredths - hundredths.round()).abs() < 1e-6
}

/// The unit glucose values (in mg/dL) were exported in: mmol/L when most of them are
/// mmol/L readings converted by [`MGDL_PER_MMOL`] (the ingestion keeps every digit, so a
/// unified CSV of an mmol/L export holds values like `113.51465999999999`), else mg/dL.
/// Placeholders written in mg/dL (Dexcom's High and Low) do not change the answer.
pub fn units_of_values(values: impl Iterator<Item = f64>) -> Units {
    let (mut total, mut mmol) = (0usize, 0usize);
    for v in values {
        total += 1;
        mmol += usize::from(from_mmol(v));
    }
    if total > 0 && mmol * 2 > total {
        Units::MmolL
    } else {
        Units::MgDl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        for s in ["mg/dL", "MGDL", "mg_dl", "mg", " mg/dl "] {
            assert_eq!(s.parse::<Units>().ok(), Some(Units::MgDl), "{s}");
        }
        for s in ["mmol/L", "mmol", "MMOLL", "mmol_l", "mmol/l"] {
            assert_eq!(s.parse::<Units>().ok(), Some(Units::MmolL), "{s}");
        }
        assert!(matches!(
            "g/L".parse::<Units>(),
            Err(PlotError::UnknownUnits(_))
        ));
    }

    #[test]
    fn conversion_gives_back_the_export_numbers() {
        assert!((Units::MmolL.from_mgdl(6.3 * MGDL_PER_MMOL) - 6.3).abs() < 1e-12);
        assert_eq!(Units::MgDl.from_mgdl(123.0), 123.0);
        assert_eq!(Units::MmolL.target_text(), "3.9–10.0 mmol/L");
        assert_eq!(Units::MgDl.target_text(), "70–180 mg/dL");
    }

    #[test]
    fn origin_round_trips_through_json() {
        for units in [Units::MgDl, Units::MmolL] {
            for clock in [Clock::Local, Clock::Utc, Clock::Unknown] {
                let o = Origin { units, clock };
                assert_eq!(Origin::from_json(&o.to_json()), Some(o));
            }
        }
        assert_eq!(Origin::from_json(&serde_json::json!({"units": "x"})), None);
    }

    #[test]
    fn units_from_values() {
        let mmol = [6.3, 6.4, 5.55, 12.0].map(|v| v * MGDL_PER_MMOL);
        assert_eq!(units_of_values(mmol.into_iter()), Units::MmolL);
        // with a few mg/dL placeholders (High = 401)
        let mixed = mmol.into_iter().chain([401.0]);
        assert_eq!(units_of_values(mixed), Units::MmolL);
        assert_eq!(
            units_of_values([120.0, 95.0, 101.0].into_iter()),
            Units::MgDl
        );
        assert_eq!(units_of_values([120.5, 95.25].into_iter()), Units::MgDl);
        assert_eq!(units_of_values(std::iter::empty()), Units::MgDl);
    }
}
