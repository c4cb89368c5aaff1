//! Integration tests of the wire format: golden files per schema version and validation.

mod golden;
mod validate;
