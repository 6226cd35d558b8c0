//! PURE decisions of `persistctl preseed`.

pub mod decide;
