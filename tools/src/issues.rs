//! Counting bad input with its position.

use serde::Serialize;

/// How many examples are kept per report.
pub const KEEP: usize = 20;

/// Bad input seen while reading: a count, and the first [`KEEP`] examples.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Issues {
    /// Total number of problems.
    pub count: u64,
    /// `"line 12: unknown operation \"foo\""`-style examples, in input order.
    pub examples: Vec<String>,
}

impl Issues {
    /// Records one problem at `place` (`"line 12"`, `"packet 7"`).
    pub fn add(&mut self, place: &str, pos: u64, what: impl std::fmt::Display) {
        self.count += 1;
        if self.examples.len() < KEEP {
            self.examples.push(format!("{place} {pos}: {what}"));
        }
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
