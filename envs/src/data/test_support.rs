//! Assertions shared by the loaders' tests.

use std::path::Path;

use crate::error::DataError;

/// Asserts `err` is `Malformed` at `offset` of `file` and that its message names the
/// file; returns the message for further checks.
pub(crate) fn expect_malformed(err: DataError, file: &Path, offset: u64) -> String {
    let msg = err.to_string();
    match err {
        DataError::Malformed {
            path, offset: o, ..
        } => {
            assert_eq!(path, file);
            assert_eq!(o, offset, "{msg}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    msg
}
