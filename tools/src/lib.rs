//! slabtune: size-class recommendations from observed traffic.
#![warn(missing_docs)]
