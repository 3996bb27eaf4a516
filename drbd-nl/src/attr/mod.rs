//! Attribute sets of the DRBD 8.4 family (`drbd_genl.h`), one enum per set.
//! The enums are generated from the table in `gen/attrs.py` (transcribed from
//! Linux v6.1 `include/linux/drbd_genl.h`; committed, reviewed output that
//! `tests/generated.rs` compares with the generator's); the bit-14 and nesting
//! logic lives in `crate::nla`.

pub(crate) mod sets;

pub use sets::*;
