//! PURE decisions of `persistctl migrate`.

pub mod decide;
