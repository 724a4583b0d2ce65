//! Memory checked before large allocations: a config whose tensors cannot fit in this
//! machine's memory is refused with the estimate and the limit
//! ([`EnvError::TooLarge`]), instead of growing until the kernel kills the process
//! without a message.

use crate::error::{EnvError, Result};

/// Bytes this machine can still give a process without swapping: `MemAvailable` of
/// `/proc/meminfo`; `None` where that is not readable (the check is then skipped).
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Errors with [`EnvError::TooLarge`] when `bytes`, the estimate of what `field` asks
/// for (`what` says of what), exceed the memory available now.
pub fn ensure_fits(field: &'static str, what: &str, bytes: u128) -> Result<()> {
    match available_bytes() {
        Some(available) if bytes > u128::from(available) => Err(EnvError::TooLarge {
            field,
            what: what.to_string(),
            needs: format_bytes(bytes),
            available: format_bytes(u128::from(available)),
        }),
        _ => Ok(()),
    }
}

/// `bytes` in GiB (or MiB below one GiB), for messages.
pub fn format_bytes(bytes: u128) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_fit_is_refused_with_the_estimate_and_the_limit() {
        // 1 PiB fits on no machine this runs on (where MemAvailable can be read).
        if available_bytes().is_some() {
            let message = ensure_fits("train_size", "the synthetic splits", 1u128 << 50)
                .unwrap_err()
                .to_string();
            assert!(message.contains("train_size"), "{message}");
            assert!(message.contains("1048576.0 GiB"), "{message}");
            assert!(message.contains("available"), "{message}");
        }
        ensure_fits("train_size", "the synthetic splits", 1024).unwrap();
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(format_bytes(5 << 20), "5.0 MiB");
    }
}
