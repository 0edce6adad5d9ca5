//! [`Fidelity`]: paper semantics or the released code's behaviour.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which semantics a loss (or a teacher set-up) follows where the paper and the official code
/// disagree (MAD weighting, MAR reduction, the segmentation teacher's entropy source).
///
/// Written `paper` or `reference-code` in configs and on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fidelity {
    /// Per-sample semantics as the paper describes them (the default).
    #[default]
    Paper,
    /// Bit-for-bit what the released PyTorch code computes, broadcasting quirks included.
    ReferenceCode,
}

impl fmt::Display for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fidelity::Paper => "paper",
            Fidelity::ReferenceCode => "reference-code",
        })
    }
}

impl FromStr for Fidelity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "paper" => Ok(Fidelity::Paper),
            "reference-code" | "reference_code" | "code" => Ok(Fidelity::ReferenceCode),
            other => Err(format!("unknown fidelity `{other}` (expected paper or reference-code)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_displays_and_serialises() {
        assert_eq!(Fidelity::default(), Fidelity::Paper);
        for f in [Fidelity::Paper, Fidelity::ReferenceCode] {
            assert_eq!(f.to_string().parse::<Fidelity>().unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{f}\""));
        }
        assert!("papers".parse::<Fidelity>().is_err());
    }
}
