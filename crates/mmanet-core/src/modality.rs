//! [`Modality`]: one input sensor or view of a task, named by the task's config.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Column names a manifest reserves; no modality may take them.
pub const RESERVED_NAMES: [&str; 4] = ["id", "label", "split", "group"];

/// One modality of a task: its `name` (as configs and manifests write it, e.g. `rgb`, `lidar`)
/// and its short `symbol` (as mask strings write it, e.g. `R` in `R+D+I`).
///
/// The core crate knows no data set: every modality is whatever its task declares. Names match
/// `[a-z][a-z0-9_]*` and are not one of [`RESERVED_NAMES`]; symbols match
/// `[A-Za-z][A-Za-z0-9_]*`, so neither can hold the `+ , = .` that separate masks, lists,
/// assignments and config keys.
///
/// ```
/// use mmanet_core::Modality;
///
/// let lidar = Modality::new("lidar", "L")?;
/// assert_eq!((lidar.name(), lidar.symbol()), ("lidar", "L"));
/// assert!(Modality::new("label", "L").is_err()); // reserved
/// assert!(Modality::new("Rgb", "R").is_err()); // names are lower case
/// # Ok::<(), mmanet_core::CoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Modality {
    name: String,
    symbol: String,
}

impl Modality {
    /// A modality with an explicit symbol; fails on an invalid name or symbol.
    pub fn new(name: &str, symbol: &str) -> Result<Self, CoreError> {
        check_name(name)?;
        check_symbol(symbol)?;
        Ok(Modality { name: name.to_string(), symbol: symbol.to_string() })
    }

    /// The config name (`rgb`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mask symbol (`R`).
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Whether `token` names this modality: its name or its symbol, ignoring ASCII case.
    pub fn is_named(&self, token: &str) -> bool {
        self.name.eq_ignore_ascii_case(token) || self.symbol.eq_ignore_ascii_case(token)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol)
    }
}

/// Checks a modality name: `[a-z][a-z0-9_]*`, not reserved.
pub fn check_name(name: &str) -> Result<(), CoreError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(CoreError::InvalidName {
            name: name.to_string(),
            why: "a modality name matches [a-z][a-z0-9_]*".into(),
        });
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(CoreError::InvalidName {
            name: name.to_string(),
            why: format!("`{name}` is a reserved manifest column ({})", RESERVED_NAMES.join(", ")),
        });
    }
    Ok(())
}

/// Checks a mask symbol: `[A-Za-z][A-Za-z0-9_]*`.
pub fn check_symbol(symbol: &str) -> Result<(), CoreError> {
    let mut chars = symbol.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(CoreError::InvalidSymbol(symbol.to_string())) }
}

/// Conventional symbols of common modality names: the ones mmanet's fixed modality list gave
/// them before modalities became names, so configs, mask strings and run files written then
/// read back unchanged (`pixel` is still `Pix` in `Pix+Fou`).
pub const CONVENTIONAL_SYMBOLS: [(&str, &str); 13] = [
    ("rgb", "R"),
    ("depth", "D"),
    ("ir", "I"),
    ("image", "Img"),
    ("audio", "A"),
    ("accelerometer", "Acc"),
    ("gyroscope", "Gyr"),
    ("pixel", "Pix"),
    ("fourier", "Fou"),
    ("profile", "Fac"),
    ("karhunen_loeve", "Kar"),
    ("zernike", "Zer"),
    ("morphological", "Mor"),
];

/// The symbols derived from `names`: a name of [`CONVENTIONAL_SYMBOLS`] gets its conventional
/// symbol; any other name the shortest prefix that is a prefix of no other name (the whole name
/// when there is none), with its first letter in upper case. `["rgb", "depth", "ir"]` gives
/// `R, D, I`; `["lidar", "radar", "range"]` gives `L, Rad, Ran`. Clashes left (a derived symbol
/// equal to another's) are reported by [`crate::ModalitySet::new`].
pub fn derive_symbols(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if let Some((_, sym)) = CONVENTIONAL_SYMBOLS.iter().find(|(n, _)| n == name) {
                return (*sym).to_string();
            }
            let others: Vec<&str> =
                names.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| *n).collect();
            // Prefixes end on character boundaries: names are only validated after this (a
            // name that is not `[a-z][a-z0-9_]*`, empty or not ASCII, is refused by
            // `Modality::new`), and slicing bytes of `ñ` panicked.
            let len = name
                .char_indices()
                .map(|(at, c)| at + c.len_utf8())
                .find(|&k| others.iter().all(|o| !o.starts_with(&name[..k])))
                .unwrap_or(name.len());
            let mut prefix = name[..len].chars();
            match prefix.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + prefix.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fuzz_config_toml` (20000 cases): a config declaring a modality whose name starts with a
    /// multi-byte character (`\u{fffd}epth`, from a mutated `depth`), or an empty name,
    /// panicked here slicing the name by bytes instead of being refused as an invalid name.
    #[test]
    fn symbols_of_non_ascii_or_empty_names_do_not_panic() {
        assert_eq!(derive_symbols(&["\u{fffd}epth", "\u{fffd}x"]), ["\u{fffd}e", "\u{fffd}x"]);
        assert_eq!(derive_symbols(&["", "rgb"]), ["", "R"]);
        let e = crate::ModalitySet::from_names(["rgb", "\u{fffd}epth"]).unwrap_err().to_string();
        assert!(e.contains("epth"), "{e}");
        assert!(crate::ModalitySet::from_names([""]).is_err());
    }

    #[test]
    fn names_and_symbols_are_checked() {
        for ok in ["rgb", "depth_2", "x"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Rgb", "2d", "a+b", "a.b", "a,b", "a=b", "id", "label", "split", "group"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for ok in ["R", "Pix", "x2_"] {
            check_symbol(ok).unwrap();
        }
        for bad in ["", "2", "R+D", "R.D", "R,D", "R=D"] {
            assert!(check_symbol(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symbols_derive_from_the_shortest_unique_prefix() {
        assert_eq!(derive_symbols(&["rgb", "depth", "ir"]), ["R", "D", "I"]);
        assert_eq!(derive_symbols(&["lidar", "radar", "range"]), ["L", "Rad", "Ran"]);
        assert_eq!(derive_symbols(&["acc", "acc2"]), ["Acc", "Acc2"]);
        assert_eq!(derive_symbols(&["sonar"]), ["S"]);
        assert_eq!(derive_symbols(&["pixel", "fourier", "karhunen_loeve"]), ["Pix", "Fou", "Kar"]);
        assert_eq!(derive_symbols(&["rgb", "radar"]), ["R", "Ra"]);
    }

    #[test]
    fn is_named_ignores_case() {
        let m = Modality::new("ir", "I").unwrap();
        assert!(m.is_named("IR") && m.is_named("i") && !m.is_named("r"));
    }
}
