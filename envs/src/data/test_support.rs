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

/// A damaged copy of a valid file: each `(at, xor)` flips bits of one byte, then the
/// bytes are cut at `cut` (possibly keeping all of them).
pub(crate) fn corrupt(
    mut bytes: Vec<u8>,
    flips: &[(proptest::sample::Index, u8)],
    cut: proptest::sample::Index,
) -> Vec<u8> {
    for (at, xor) in flips {
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
    }
    bytes.truncate(cut.index(bytes.len() + 1));
    bytes
}
