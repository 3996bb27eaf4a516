//! The lab harness.
