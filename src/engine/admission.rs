//! Admission control for parse work: how much memory the uploads being read
//! at once may cost. Reading an export costs memory in proportion to its
//! decoded size (the text, its records, the rows, the unified table and its
//! CSV), so each upload is charged [`COST_PER_BYTE`] times its size against
//! a bounded budget, first for the bytes received and, once a gzip upload is
//! inflated, for what it inflated to. An upload that does not fit is refused
//! at once with [`EngineError::Busy`] (503 + `Retry-After`) instead of being
//! parsed beside the others until the machine runs out of memory.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::formats::{self, ParseOptions, Parsed};

use super::error::EngineError;

/// Peak resident bytes per byte of decoded upload while it is parsed and
/// prepared, rounded up: `glurpc serve` reading a 60 MiB Dexcom export peaks
/// 8.6 times its size above idle through `/process_unified` and 7.6 times
/// through `/convert_to_unified` (docs/performance.md).
pub const COST_PER_BYTE: usize = 9;

/// Seconds a refused upload is told to wait (a 60 MiB export is read in
/// about a second and a half).
pub const RETRY_AFTER_S: u32 = 2;

/// Budget units are KiB, so that a `u32` permit count covers terabytes.
const UNIT: usize = 1024;

/// The budget (cheap to clone).
#[derive(Clone)]
pub struct ParseBudget {
    sem: Arc<Semaphore>,
    units: usize,
}

/// Memory reserved for one upload's parse; given back when dropped.
pub struct Admission {
    permit: Option<OwnedSemaphorePermit>,
    charged: usize,
}

impl ParseBudget {
    /// A budget of `bytes` of parse memory (at least one unit).
    pub fn new(bytes: usize) -> ParseBudget {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        ParseBudget {
            sem: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// The units `bytes` of upload cost, never more than the whole budget
    /// (so one upload can always run alone).
    fn cost(&self, bytes: usize) -> usize {
        bytes
            .saturating_mul(COST_PER_BYTE)
            .div_ceil(UNIT)
            .clamp(1, self.units)
    }

    /// Reserves the cost of `bytes` of upload, or refuses with
    /// [`EngineError::Busy`].
    pub fn admit(&self, bytes: usize) -> Result<Admission, EngineError> {
        let mut admission = Admission {
            permit: None,
            charged: 0,
        };
        self.grow(&mut admission, bytes)?;
        Ok(admission)
    }

    /// Grows `admission` to cover `bytes` of upload in all (e.g. once a gzip
    /// upload is inflated), or refuses with [`EngineError::Busy`].
    pub fn grow(&self, admission: &mut Admission, bytes: usize) -> Result<(), EngineError> {
        let want = self.cost(bytes);
        if want <= admission.charged {
            return Ok(());
        }
        let more = want - admission.charged;
        let permit = u32::try_from(more)
            .ok()
            .and_then(|n| self.sem.clone().try_acquire_many_owned(n).ok())
            .ok_or(EngineError::Busy {
                retry_after_s: RETRY_AFTER_S,
            })?;
        match &mut admission.permit {
            Some(p) => p.merge(permit),
            None => admission.permit = Some(permit),
        }
        admission.charged = want;
        Ok(())
    }

    /// Bytes of budget free now.
    pub fn available_bytes(&self) -> usize {
        self.sem.available_permits() * UNIT
    }
}

/// Parses `files` (at most `max_upload` bytes once inflated) within
/// `budget`: charged for the bytes received, then for what gzip files
/// inflate to; the admission keeps the charge until it is dropped.
pub(crate) fn parse_within(
    budget: &ParseBudget,
    max_upload: usize,
    files: &[&[u8]],
) -> Result<(Parsed, Admission), EngineError> {
    let received: usize = files.iter().map(|f| f.len()).sum();
    let mut admission = budget.admit(received)?;
    let inflated = files
        .iter()
        .map(|f| formats::decode::decompress(f, max_upload))
        .collect::<Result<Vec<_>, _>>()?;
    let size: usize = inflated.iter().map(|d| d.len()).sum();
    budget.grow(&mut admission, size.max(received))?;
    let refs: Vec<&[u8]> = inflated.iter().map(|d| d.as_ref()).collect();
    let opts = ParseOptions {
        max_bytes: max_upload,
    };
    Ok((formats::parse_uploads(&refs, &opts)?, admission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_share_the_budget_and_give_it_back() {
        let b = ParseBudget::new(100 * COST_PER_BYTE * UNIT);
        let a = b.admit(60 * UNIT).unwrap();
        // 60 of 100 taken: another 60 does not fit, 40 does
        assert!(matches!(b.admit(60 * UNIT), Err(EngineError::Busy { .. })));
        let c = b.admit(40 * UNIT).unwrap();
        assert_eq!(b.available_bytes(), 0);
        drop(a);
        drop(c);
        assert_eq!(b.available_bytes(), 100 * COST_PER_BYTE * UNIT);
    }

    #[test]
    fn a_grown_admission_is_charged_the_difference() {
        let b = ParseBudget::new(100 * COST_PER_BYTE * UNIT);
        let mut a = b.admit(10 * UNIT).unwrap();
        b.grow(&mut a, 70 * UNIT).unwrap();
        assert_eq!(b.available_bytes(), 30 * COST_PER_BYTE * UNIT);
        // what an inflated upload cannot get is refused, and nothing leaks
        assert!(
            b.grow(&mut a, 130 * UNIT).is_ok(),
            "clamped to the whole budget"
        );
        assert_eq!(b.available_bytes(), 0);
        drop(a);
        assert_eq!(b.available_bytes(), 100 * COST_PER_BYTE * UNIT);
        let small = ParseBudget::new(UNIT);
        let one = small.admit(10 << 20).unwrap();
        assert!(matches!(small.admit(1), Err(EngineError::Busy { .. })));
        drop(one);
    }
}
