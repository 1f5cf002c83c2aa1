//! The Clarke error grid (Clarke et al., Diabetes Care 1987): the clinical
//! zone of a glucose estimate against the measured value, both in mg/dL.
//!
//! The boundaries are those of the widely used `clarke_error_grid` Python
//! implementations, tested in this order:
//!
//! - A: the estimate within 20% of the reference (`0.8 ref <= pred <= 1.2 ref`),
//!   or both at most 70 mg/dL;
//! - E: `ref <= 70` and `pred >= 180`, or `ref >= 180` and `pred <= 70`;
//! - C: `70 <= ref <= 290` and `pred >= ref + 110`, or `130 <= ref <= 180`
//!   and `pred <= 7/5 ref - 182`;
//! - D: `ref >= 240` and `70 <= pred <= 180`, or `ref <= 175/3` and
//!   `70 <= pred <= 180`, or `175/3 <= ref <= 70` and `pred >= 6/5 ref`;
//! - B: everything else.
//!
//! (The paper writes "both below 70" for the low corner of zone A; the
//! implementations, and so this module, count 70 itself in.)

use serde::Serialize;

/// A Clarke error grid zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    /// Clinically accurate.
    A,
    /// Benign errors.
    B,
    /// Overcorrection: would lead to unnecessary treatment.
    C,
    /// Dangerous failure to detect and treat.
    D,
    /// Erroneous treatment (hypo read as hyper or the reverse).
    E,
}

impl Zone {
    /// The five zones in order.
    pub const ALL: [Zone; 5] = [Zone::A, Zone::B, Zone::C, Zone::D, Zone::E];

    /// Position in [`Zone::ALL`].
    pub fn index(self) -> usize {
        match self {
            Zone::A => 0,
            Zone::B => 1,
            Zone::C => 2,
            Zone::D => 3,
            Zone::E => 4,
        }
    }
}

/// The zone of the estimate `prediction` of the measured value `reference`
/// (both mg/dL).
pub fn zone(reference: f64, prediction: f64) -> Zone {
    let (r, p) = (reference, prediction);
    if (r <= 70.0 && p <= 70.0) || (p <= 1.2 * r && p >= 0.8 * r) {
        Zone::A
    } else if (r >= 180.0 && p <= 70.0) || (r <= 70.0 && p >= 180.0) {
        Zone::E
    } else if ((70.0..=290.0).contains(&r) && p >= r + 110.0)
        || ((130.0..=180.0).contains(&r) && p <= (7.0 / 5.0) * r - 182.0)
    {
        Zone::C
    } else if (r >= 240.0 && (70.0..=180.0).contains(&p))
        || (r <= 175.0 / 3.0 && (70.0..=180.0).contains(&p))
        || ((175.0 / 3.0..=70.0).contains(&r) && p >= (6.0 / 5.0) * r)
    {
        Zone::D
    } else {
        Zone::B
    }
}

/// Points counted per zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneCounts {
    /// Counts in the order of [`Zone::ALL`].
    pub counts: [usize; 5],
}

impl ZoneCounts {
    /// Counts one (reference, prediction) pair.
    pub fn add(&mut self, reference: f64, prediction: f64) {
        self.counts[zone(reference, prediction).index()] += 1;
    }

    /// Points counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The share of the points in each zone (all 0 when none was counted).
    pub fn fractions(&self) -> Clarke {
        let n = self.total().max(1) as f64;
        let f = |z: Zone| self.counts[z.index()] as f64 / n;
        Clarke {
            a: f(Zone::A),
            b: f(Zone::B),
            c: f(Zone::C),
            d: f(Zone::D),
            e: f(Zone::E),
        }
    }
}

/// The share of the points in each zone; serialised as
/// `{"A": .., "B": .., "C": .., "D": .., "E": ..}`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Clarke {
    /// Zone A.
    #[serde(rename = "A")]
    pub a: f64,
    /// Zone B.
    #[serde(rename = "B")]
    pub b: f64,
    /// Zone C.
    #[serde(rename = "C")]
    pub c: f64,
    /// Zone D.
    #[serde(rename = "D")]
    pub d: f64,
    /// Zone E.
    #[serde(rename = "E")]
    pub e: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(points: &[(f64, f64)], want: Zone) {
        for &(r, p) in points {
            assert_eq!(zone(r, p), want, "reference {r}, prediction {p}");
        }
    }

    #[test]
    fn points_clearly_inside_each_zone() {
        check(&[(100.0, 100.0), (200.0, 210.0), (350.0, 300.0)], Zone::A);
        check(&[(100.0, 150.0), (200.0, 150.0), (300.0, 200.0)], Zone::B);
        check(&[(100.0, 250.0), (150.0, 20.0), (250.0, 380.0)], Zone::C);
        check(&[(300.0, 100.0), (250.0, 150.0), (40.0, 120.0)], Zone::D);
        check(&[(50.0, 200.0), (200.0, 50.0), (300.0, 40.0)], Zone::E);
    }

    #[test]
    fn the_20_percent_edges() {
        // Both ends of the band belong to A; just outside it is B.
        check(&[(100.0, 80.0), (100.0, 120.0), (150.0, 120.0)], Zone::A);
        check(&[(100.0, 79.0), (100.0, 121.0), (150.0, 119.0)], Zone::B);
        check(&[(250.0, 201.0), (250.0, 299.0)], Zone::A);
    }

    #[test]
    fn the_70_mgdl_edges() {
        // Both at most 70: A however far apart.
        check(&[(70.0, 70.0), (65.0, 30.0), (40.0, 70.0)], Zone::A);
        // A reading above 70 against a low reference below 1.2 ref is still A ...
        check(&[(69.0, 75.0)], Zone::A);
        // ... above 6/5 ref it is a missed hypoglycaemia (D).
        check(&[(60.0, 75.0), (70.0, 179.0), (50.0, 71.0)], Zone::D);
        // 180 against a reference of at most 70: E.
        check(&[(70.0, 180.0), (55.0, 180.0)], Zone::E);
        // A reference just above 70 read as low: B (outside the 20% band, not E).
        check(&[(80.0, 60.0), (71.0, 40.0)], Zone::B);
        // A reference of at least 180 read as at most 70: E.
        check(&[(180.0, 70.0)], Zone::E);
    }

    #[test]
    fn the_c_and_d_lines() {
        // pred >= ref + 110 for 70 <= ref <= 290.
        check(&[(100.0, 210.0), (290.0, 400.0)], Zone::C);
        check(&[(100.0, 209.0)], Zone::B);
        // pred <= 7/5 ref - 182 for 130 <= ref <= 180 (28 at 150).
        check(&[(150.0, 27.5), (170.0, 50.0)], Zone::C);
        check(&[(150.0, 29.0)], Zone::B);
        // ref >= 240 read between 70 and 180: D; 181: B.
        check(&[(240.0, 180.0), (240.0, 71.0)], Zone::D);
        // ... and at 70 or below it is E.
        check(&[(240.0, 70.0)], Zone::E);
        check(&[(240.0, 181.0)], Zone::B);
    }

    #[test]
    fn fractions_sum_to_one() {
        let mut z = ZoneCounts::default();
        for (r, p) in [
            (100.0, 100.0),
            (100.0, 150.0),
            (100.0, 250.0),
            (300.0, 100.0),
        ] {
            z.add(r, p);
        }
        assert_eq!(z.counts, [1, 1, 1, 1, 0]);
        let f = z.fractions();
        assert_eq!((f.a, f.b, f.c, f.d, f.e), (0.25, 0.25, 0.25, 0.25, 0.0));
        let json = serde_json::to_value(f).unwrap_or_default();
        assert_eq!(json["A"], 0.25);
        assert_eq!(json["E"], 0.0);
        assert_eq!(ZoneCounts::default().fractions().a, 0.0);
    }
}
