//! Which floating-point code paths libtorch runs: the CPU's fastest (`native`), or one
//! that gives the same bits on every x86-64 CPU with AVX2 (`portable`).
//!
//! A run is bit for bit reproducible on one machine at one intra-op thread. Across
//! machines it is not, by default: MKL's sgemm, ATen's vectorised kernels and oneDNN's
//! convolutions each pick a code path for the CPU they find (AVX-512 on a recent Intel
//! Xeon, other kernels on an AMD EPYC), and each path rounds differently. A teacher that
//! keeps different rows after one last-bit difference then trains a different student.
//! On Fashion-MNIST (5 seeds), an Intel Xeon with AVX-512 and an AMD EPYC give NoTeach
//! 21360 and 21320 instances to tau (56.0 and 55.9 training GFLOP), RHO-LOSS 3720 and
//! 4080 (66.0 and 72.4 GFLOP).
//!
//! `portable` pins all three libraries to their AVX2 code path, before libtorch's first
//! operation in the process:
//!
//! | variable | value | what it pins |
//! |---|---|---|
//! | `MKL_CBWR` | `AVX2` | MKL's conditional numerical reproducibility: its AVX2 branch on any CPU that has AVX2, Intel or not |
//! | `ATEN_CPU_CAPABILITY` | `avx2` | the kernels ATen dispatches by CPU capability (softmax, elementwise ops) |
//! | `ONEDNN_MAX_CPU_ISA` | `AVX2` | oneDNN's convolutions (the CNN and ResNet students) |
//!
//! The same build of l2t and libtorch on two x86-64 machines with AVX2 then gives the
//! same bits, with the same thread count, as MKL documents for its AVX2 branch. It costs
//! speed on CPUs with AVX-512: MKL's AVX2 sgemm is about half as fast there. Choose it
//! for results that must match across machines (a heterogeneous MPI cluster, a figure
//! rerun on another machine): `l2t --numerics portable ...`, or `L2T_NUMERICS=portable`
//! in the environment of the `l2t` command or of Python before `import l2t`.

use std::str::FromStr;

use crate::error::{EnvError, Result};

/// The environment variable that chooses the numerics of a process (`native` or
/// `portable`), read by the `l2t` command and by the Python package at import.
pub const NUMERICS_VARIABLE: &str = "L2T_NUMERICS";

/// The variables `portable` sets, with their values (see the module doc).
pub const PORTABLE_SETTINGS: [(&str, &str); 3] = [
    ("MKL_CBWR", "AVX2"),
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
];

/// The floating-point code paths of a process: the CPU's fastest, or the AVX2 paths
/// that give the same bits on every x86-64 CPU with AVX2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Numerics {
    /// Each library picks its fastest path for this CPU (libtorch's default).
    #[default]
    Native,
    /// MKL, ATen and oneDNN pinned to their AVX2 paths ([`PORTABLE_SETTINGS`]).
    Portable,
}

impl FromStr for Numerics {
    type Err = EnvError;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "native" => Ok(Self::Native),
            "portable" => Ok(Self::Portable),
            _ => Err(unknown("numerics", text)),
        }
    }
}

impl std::fmt::Display for Numerics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Portable => "portable",
        })
    }
}

impl Numerics {
    /// The numerics `L2T_NUMERICS` asks for: native when it is unset or empty; an error
    /// naming the variable for any value but `native` and `portable`.
    pub fn from_env() -> Result<Self> {
        match std::env::var(NUMERICS_VARIABLE) {
            Ok(text) if !text.trim().is_empty() => {
                text.parse().map_err(|_| unknown(NUMERICS_VARIABLE, &text))
            }
            _ => Ok(Self::Native),
        }
    }

    /// Makes this process run these numerics. Call it first, before any libtorch
    /// operation: MKL, ATen and oneDNN each read their variable once, at their first use,
    /// and a later change is ignored. `native` changes nothing. `portable` sets
    /// [`PORTABLE_SETTINGS`]; it fails, changing nothing, on a CPU without AVX2, or where
    /// one of the variables is already set to another value (which would break the
    /// guarantee), naming the variable.
    pub fn apply(self) -> Result<()> {
        if self == Self::Native {
            return Ok(());
        }
        if !portable_supported() {
            return Err(EnvError::Unsupported(
                "numerics `portable` pins libtorch to its AVX2 code paths, and this CPU has \
                 no AVX2 (or is not x86-64); use `native`"
                    .to_string(),
            ));
        }
        for (name, value) in PORTABLE_SETTINGS {
            if let Ok(set) = std::env::var(name) {
                if set != value {
                    return Err(EnvError::InvalidConfig {
                        field: "numerics",
                        reason: format!(
                            "`portable` sets {name}={value}, and the environment already sets \
                             {name}={set}; unset it or use `native`"
                        ),
                    });
                }
            }
        }
        for (name, value) in PORTABLE_SETTINGS {
            // Before any thread that reads the environment: the callers (the `l2t`
            // command's start, the Python module's import) run it before libtorch.
            std::env::set_var(name, value);
        }
        Ok(())
    }

    /// The numerics this process runs, read from the variables themselves: `portable`
    /// when all of [`PORTABLE_SETTINGS`] hold (set by [`Numerics::apply`] or by the
    /// user), `native` otherwise. Run folders record it in their manifest.
    pub fn in_effect() -> Self {
        let all = PORTABLE_SETTINGS
            .iter()
            .all(|(name, value)| std::env::var(name).is_ok_and(|set| set == *value));
        if all {
            Self::Portable
        } else {
            Self::Native
        }
    }
}

/// The error for `text` given as numerics in `field` (the flag, or `L2T_NUMERICS`).
fn unknown(field: &'static str, text: &str) -> EnvError {
    EnvError::InvalidConfig {
        field,
        reason: format!("`{}` is neither `native` nor `portable`", text.trim()),
    }
}

/// Whether this CPU has the AVX2 code paths `portable` pins (an x86-64 CPU with AVX2 and
/// FMA); [`Numerics::apply`] refuses `portable` elsewhere.
pub fn portable_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for numerics in [Numerics::Native, Numerics::Portable] {
            assert_eq!(
                numerics.to_string().parse::<Numerics>().ok(),
                Some(numerics)
            );
        }
        assert_eq!(
            " Portable ".parse::<Numerics>().ok(),
            Some(Numerics::Portable)
        );
        let error = "fast".parse::<Numerics>().err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("`fast`")),
            "{error:?}"
        );
    }

    #[test]
    fn native_changes_nothing() {
        assert!(Numerics::Native.apply().is_ok());
    }
}
