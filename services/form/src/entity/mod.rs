//! Database rows of the form service (sea-orm entities).

pub mod draft;
pub mod form;
