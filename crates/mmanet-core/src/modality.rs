//! [`Modality`]: one input sensor or view.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// One input modality. The declaration order is the canonical order in which masks are
/// written (`R+D+I`, never `I+R`).
///
/// Besides the paper's modalities (RGB, depth, infrared), the variants cover the
/// registry-packaged real data sets (MNIST image + spoken-digit audio, accelerometer +
/// gyroscope, the six UCI Multiple Features views) and sixteen numbered [`Modality::Custom`]
/// slots for users' own data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Colour camera (`R`).
    Rgb,
    /// Depth camera (`D`).
    Depth,
    /// Near-infrared camera (`I`).
    Ir,
    /// A generic image (`Img`), e.g. MNIST in AV-MNIST.
    Image,
    /// Audio features (`A`), e.g. MFCC sequences.
    Audio,
    /// Accelerometer (`Acc`).
    Accelerometer,
    /// Gyroscope (`Gyr`).
    Gyroscope,
    /// UCI mfeat pixel averages (`Pix`).
    Pixel,
    /// UCI mfeat Fourier coefficients (`Fou`).
    Fourier,
    /// UCI mfeat profile correlations (`Fac`).
    Profile,
    /// UCI mfeat Karhunen-Loeve coefficients (`Kar`).
    KarhunenLoeve,
    /// UCI mfeat Zernike moments (`Zer`).
    Zernike,
    /// UCI mfeat morphological features (`Mor`).
    Morphological,
    /// A user-defined modality slot `X0` .. `X15`.
    Custom(u8),
}

const NAMED: [Modality; 13] = [
    Modality::Rgb,
    Modality::Depth,
    Modality::Ir,
    Modality::Image,
    Modality::Audio,
    Modality::Accelerometer,
    Modality::Gyroscope,
    Modality::Pixel,
    Modality::Fourier,
    Modality::Profile,
    Modality::KarhunenLoeve,
    Modality::Zernike,
    Modality::Morphological,
];

impl Modality {
    /// Number of [`Modality::Custom`] slots.
    pub const CUSTOM_SLOTS: u8 = 16;

    /// Every modality, in canonical order.
    pub fn all() -> impl Iterator<Item = Modality> {
        NAMED.into_iter().chain((0..Self::CUSTOM_SLOTS).map(Modality::Custom))
    }

    /// Position in the canonical order; also the bit used by [`crate::ModalityMask`].
    pub fn index(self) -> u32 {
        match self {
            Modality::Custom(k) => NAMED.len() as u32 + u32::from(k.min(Self::CUSTOM_SLOTS - 1)),
            named => NAMED.iter().position(|m| *m == named).expect("named modality") as u32,
        }
    }

    /// The modality at a canonical position, if any.
    pub fn from_index(index: u32) -> Option<Modality> {
        let i = index as usize;
        if i < NAMED.len() {
            Some(NAMED[i])
        } else if i < NAMED.len() + usize::from(Self::CUSTOM_SLOTS) {
            Some(Modality::Custom((i - NAMED.len()) as u8))
        } else {
            None
        }
    }

    /// Short symbol used in mask strings (`R`, `D`, `I`, `Img`, ...).
    pub fn symbol(self) -> String {
        match self {
            Modality::Rgb => "R".into(),
            Modality::Depth => "D".into(),
            Modality::Ir => "I".into(),
            Modality::Image => "Img".into(),
            Modality::Audio => "A".into(),
            Modality::Accelerometer => "Acc".into(),
            Modality::Gyroscope => "Gyr".into(),
            Modality::Pixel => "Pix".into(),
            Modality::Fourier => "Fou".into(),
            Modality::Profile => "Fac".into(),
            Modality::KarhunenLoeve => "Kar".into(),
            Modality::Zernike => "Zer".into(),
            Modality::Morphological => "Mor".into(),
            Modality::Custom(k) => format!("X{k}"),
        }
    }

    /// Lower-case long name (`rgb`, `depth`, `ir`, ...), as used in configs.
    pub fn name(self) -> String {
        match self {
            Modality::Custom(k) => format!("custom{k}"),
            other => long_name(other).to_string(),
        }
    }
}

/// The serde name of a named modality.
fn long_name(m: Modality) -> &'static str {
    match m {
        Modality::Rgb => "rgb",
        Modality::Depth => "depth",
        Modality::Ir => "ir",
        Modality::Image => "image",
        Modality::Audio => "audio",
        Modality::Accelerometer => "accelerometer",
        Modality::Gyroscope => "gyroscope",
        Modality::Pixel => "pixel",
        Modality::Fourier => "fourier",
        Modality::Profile => "profile",
        Modality::KarhunenLoeve => "karhunen_loeve",
        Modality::Zernike => "zernike",
        Modality::Morphological => "morphological",
        Modality::Custom(_) => "custom",
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol())
    }
}

impl FromStr for Modality {
    type Err = CoreError;

    /// Accepts the symbol (`R`, case-sensitive for one-letter symbols is not required: `r` works)
    /// or the long name (`rgb`, `infrared`, `custom3`, `X3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let aliases: &[(&str, Modality)] = &[
            ("color", Modality::Rgb),
            ("colour", Modality::Rgb),
            ("profile_rgb", Modality::Rgb),
            ("infrared", Modality::Ir),
            ("nir", Modality::Ir),
            ("img", Modality::Image),
            ("acc", Modality::Accelerometer),
            ("gyr", Modality::Gyroscope),
            ("gyro", Modality::Gyroscope),
        ];
        if let Some((_, m)) = aliases.iter().find(|(a, _)| *a == lower) {
            return Ok(*m);
        }
        for m in Modality::all() {
            if m.symbol().eq_ignore_ascii_case(t) || m.name() == lower {
                return Ok(m);
            }
        }
        Err(CoreError::UnknownModality(t.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_for_every_modality() {
        for (i, m) in Modality::all().enumerate() {
            assert_eq!(m.index() as usize, i);
            assert_eq!(Modality::from_index(i as u32), Some(m));
        }
        assert_eq!(Modality::from_index(29), None);
    }

    #[test]
    fn symbols_and_names_parse_back() {
        for m in Modality::all() {
            assert_eq!(m.symbol().parse::<Modality>().unwrap(), m);
            assert_eq!(m.name().parse::<Modality>().unwrap(), m, "{}", m.name());
        }
        assert_eq!("infrared".parse::<Modality>().unwrap(), Modality::Ir);
        assert!("sonar".parse::<Modality>().is_err());
    }

    #[test]
    fn serde_uses_snake_case_names() {
        assert_eq!(serde_json::to_string(&Modality::KarhunenLoeve).unwrap(), "\"karhunen_loeve\"");
        let m: Modality = serde_json::from_str("\"ir\"").unwrap();
        assert_eq!(m, Modality::Ir);
    }
}
