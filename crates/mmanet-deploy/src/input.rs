//! From raw inputs (files, numbers) of any non-empty subset of a model's modalities to a
//! [`Prepared`] sample: decoded and transformed as the model's input spec says, absent
//! modalities as zero placeholders with mask bit 0. Needs only the metadata, so request
//! threads prepare while the model's thread runs batches.

use std::path::PathBuf;

use mmanet_data::input_spec::{Decoder, InputModality};
use mmanet_data::{InputSpec, ModalityData, Task};

use crate::format::ModelMetadata;
use crate::{DeployError, Result};

/// One modality's raw input, before the model's own transforms.
#[derive(Clone, Debug, PartialEq)]
pub enum RawInput {
    /// A file (image, `.npy`, or a text file of numbers), decoded by the modality's decoder.
    File(PathBuf),
    /// Numbers, as a manifest cell holds them (vector and sequence modalities). `shape`, when
    /// given (a nested array), must be the decoder's shape (`[T, F]` with any `T` for a
    /// sequence).
    Values {
        /// Row-major values.
        values: Vec<f32>,
        /// The nesting of the given array, if it was nested.
        shape: Option<Vec<usize>>,
    },
}

/// A sample ready for the network.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Per modality position: whether it was given.
    pub present: Vec<bool>,
    /// Per modality position: the network input (a zero placeholder when absent).
    ///
    /// # Shapes
    /// Each `data.shape` is one sample's input, e.g. `[3, H, W]`, `[D]`, `[T, F]`.
    pub inputs: Vec<ModalityData>,
    /// Segmentation: the label map's `[height, width]` (the network runs at multiples of 32).
    pub out_size: Option<[usize; 2]>,
}

impl Prepared {
    /// The shapes of every input: samples with equal keys batch together.
    pub fn shape_key(&self) -> Vec<Vec<i64>> {
        self.inputs.iter().map(|d| d.shape.clone()).collect()
    }
}

/// The modalities a [`Prepared::present`] vector marks, in the task's order.
pub fn present_modalities<'a>(
    spec: &'a InputSpec,
    present: &'a [bool],
) -> impl Iterator<Item = &'a InputModality> + 'a {
    spec.modalities.iter().zip(present).filter(|(_, p)| **p).map(|(m, _)| m)
}

/// ESANet's encoder divides by 32 and its decoder adds the skips back, so segmentation inputs
/// run at the next multiple of 32 and the logits are resized back.
fn multiple_of_32(n: usize) -> usize {
    n.div_ceil(32).max(1) * 32
}

/// An image decoder's fixed output size, if it has one.
fn decoder_size(decoder: &Decoder) -> Option<[usize; 2]> {
    decoder.fixed_shape().and_then(|s| match s[..] {
        [_, h, w] => Some([h as usize, w as usize]),
        _ => None,
    })
}

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { format!("inputs.{name}") } else { format!("{prefix}.inputs.{name}") }
}

/// `rgb (R), depth (D)`: the model's modalities with their symbols.
fn describe(spec: &InputSpec) -> String {
    let parts: Vec<String> =
        spec.modalities.iter().map(|m| format!("{} ({})", m.name, m.symbol)).collect();
    parts.join(", ")
}

/// Maps the given modality tokens (name or symbol) to positions; errors name the field
/// (`inputs.lidar`, prefixed by `prefix`, e.g. `instances[2]`).
fn positions(
    spec: &InputSpec,
    inputs: Vec<(String, RawInput)>,
    prefix: &str,
) -> Result<Vec<(usize, RawInput)>> {
    let whole = if prefix.is_empty() { "inputs".to_string() } else { format!("{prefix}.inputs") };
    if inputs.is_empty() {
        return Err(DeployError::input(
            whole,
            format!("give at least one modality (this model reads {})", describe(spec)),
        ));
    }
    let mut out: Vec<(usize, RawInput)> = Vec::with_capacity(inputs.len());
    for (token, raw) in inputs {
        let pos =
            spec.modalities.iter().position(|m| m.name == token || m.symbol == token).ok_or_else(
                || {
                    DeployError::input(
                        field(prefix, &token),
                        format!("unknown modality `{token}` (this model reads {})", describe(spec)),
                    )
                },
            )?;
        if out.iter().any(|(p, _)| *p == pos) {
            return Err(DeployError::input(
                field(prefix, &spec.modalities[pos].name),
                "given twice (by name and by symbol?)",
            ));
        }
        out.push((pos, raw));
    }
    out.sort_by_key(|(p, _)| *p);
    Ok(out)
}

/// `FILE: ` for a file input (prefixing a message), nothing for numbers.
fn origin(raw: &RawInput) -> String {
    match raw {
        RawInput::File(p) => format!("{}: ", p.display()),
        RawInput::Values { .. } => String::new(),
    }
}

/// Decodes one raw input with modality `m`'s decoder (`size` overrides an image's size).
fn decode(
    spec: &InputSpec,
    m: usize,
    raw: &RawInput,
    size: Option<[usize; 2]>,
    prefix: &str,
) -> Result<ModalityData> {
    let modality = &spec.modalities[m];
    let name = field(prefix, &modality.name);
    let decoder = &modality.decoder;
    let data = match raw {
        RawInput::File(path) => {
            decoder.decode_file(path, size).map_err(|e| DeployError::input(&name, e.to_string()))?
        }
        RawInput::Values { values, shape } => {
            if decoder.is_image() {
                return Err(DeployError::input(
                    &name,
                    format!(
                        "a {} input is an image file: send {{\"base64\": \"<file bytes>\"}} or a path",
                        decoder.kind_name()
                    ),
                ));
            }
            if let Some(shape) = shape {
                check_nesting(decoder, shape).map_err(|m| DeployError::input(&name, m))?;
            }
            decoder
                .decode_values(values.clone())
                .map_err(|e| DeployError::input(&name, e.to_string()))?
        }
    };
    if let Some(i) = data.data.iter().position(|v| !v.is_finite()) {
        return Err(DeployError::input(
            &name,
            format!("value {} is {} after decoding: inputs must be finite", i + 1, data.data[i]),
        ));
    }
    if let (Some(want), None) = (decoder.fixed_shape(), size) {
        if want != data.shape {
            return Err(DeployError::input(
                &name,
                format!("decoded to shape {:?}, the model reads {want:?}", data.shape),
            ));
        }
    }
    Ok(data)
}

/// A nested array's shape must be the decoder's (a sequence: any number of `features`-wide
/// rows).
fn check_nesting(decoder: &Decoder, shape: &[usize]) -> std::result::Result<(), String> {
    match decoder {
        Decoder::Vector { shape: want, .. } => {
            let want: Vec<usize> = want.iter().map(|&d| d as usize).collect();
            if shape.len() > 1 && shape != want.as_slice() {
                return Err(format!("array of shape {shape:?}, the model reads {want:?}"));
            }
            Ok(())
        }
        Decoder::Sequence { features, .. } => match shape {
            [_, f] if f == features => Ok(()),
            [_] => Ok(()),
            other => Err(format!("array of shape {other:?}, the model reads [T, {features}]")),
        },
        Decoder::Image { .. } | Decoder::GreyPng { .. } | Decoder::CityscapesDepth { .. } => {
            Err(format!("a {} input is an image file, not numbers", decoder.kind_name()))
        }
    }
}

/// The zero placeholder of absent modality `m` (classification: the decoder's fixed shape).
fn placeholder(spec: &InputSpec, m: usize, size: Option<[usize; 2]>) -> Result<ModalityData> {
    let decoder = &spec.modalities[m].decoder;
    let shape = match (size, decoder.channels()) {
        (Some([h, w]), Some(c)) => vec![c as i64, h as i64, w as i64],
        _ => decoder.fixed_shape().ok_or_else(|| {
            DeployError::input(
                field("", &spec.modalities[m].name),
                "its size depends on the file, and no other input fixes it: give it",
            )
        })?,
    };
    let n = shape.iter().product::<i64>() as usize;
    let zeros = vec![0.0; n];
    Ok(match decoder {
        // A zero placeholder of one step, masked out anyway.
        Decoder::Sequence { .. } => ModalityData::sequence(zeros, shape, 1)?,
        Decoder::Image { .. }
        | Decoder::GreyPng { .. }
        | Decoder::CityscapesDepth { .. }
        | Decoder::Vector { .. } => ModalityData::new(zeros, shape)?,
    })
}

/// Decodes `inputs` (modality name or symbol, raw input; any non-empty subset) for the model
/// `meta` describes. `prefix` names the sample in errors (`instances[3]`; empty for one).
pub fn prepare(
    meta: &ModelMetadata,
    inputs: Vec<(String, RawInput)>,
    prefix: &str,
) -> Result<Prepared> {
    let spec = &meta.input_spec;
    let given = positions(spec, inputs, prefix)?;
    let m_count = spec.modalities.len();
    let mut present = vec![false; m_count];
    for (p, _) in &given {
        present[*p] = true;
    }
    let mut slots: Vec<Option<ModalityData>> = vec![None; m_count];
    let out_size = match spec.task {
        Task::Classification { .. } => {
            for (p, raw) in &given {
                slots[*p] = Some(decode(spec, *p, raw, None, prefix)?);
            }
            None
        }
        Task::Segmentation { .. } => {
            for (p, _) in &given {
                let d = &spec.modalities[*p].decoder;
                if !d.is_image() {
                    return Err(DeployError::input(
                        field(prefix, &spec.modalities[*p].name),
                        format!("segmentation reads images, not a {} input", d.kind_name()),
                    ));
                }
            }
            // The output size: the spec's evaluation size, else the first file's size.
            let [h, w] =
                match given.iter().find_map(|(p, _)| decoder_size(&spec.modalities[*p].decoder)) {
                    Some(s) => s,
                    None => {
                        let (p, raw) = &given[0];
                        let x = decode(spec, *p, raw, None, prefix)?;
                        [x.shape[1] as usize, x.shape[2] as usize]
                    }
                };
            let run = [multiple_of_32(h), multiple_of_32(w)];
            for (p, raw) in &given {
                if decoder_size(&spec.modalities[*p].decoder).is_none() {
                    let own = decode(spec, *p, raw, None, prefix)?;
                    if [own.shape[1] as usize, own.shape[2] as usize] != [h, w] {
                        return Err(DeployError::input(
                            field(prefix, &spec.modalities[*p].name),
                            format!(
                                "{}{}x{}, the other input is {h}x{w}",
                                origin(raw),
                                own.shape[1],
                                own.shape[2]
                            ),
                        ));
                    }
                }
                slots[*p] = Some(decode(spec, *p, raw, Some(run), prefix)?);
            }
            Some([h, w])
        }
    };
    let run_size = out_size.map(|[h, w]| [multiple_of_32(h), multiple_of_32(w)]);
    let inputs = slots
        .into_iter()
        .enumerate()
        .map(|(m, s)| match s {
            Some(d) => Ok(d),
            None => placeholder(spec, m, run_size),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared { present, inputs, out_size })
}

/// A sample with every modality present and all-zero inputs, for warming a network up;
/// `None` when an input's size depends on its file.
pub fn warmup_sample(meta: &ModelMetadata) -> Option<Prepared> {
    let spec = &meta.input_spec;
    let size = match spec.task {
        Task::Classification { .. } => None,
        Task::Segmentation { .. } => {
            let s = spec.modalities.iter().find_map(|m| decoder_size(&m.decoder))?;
            Some(s)
        }
    };
    let run = size.map(|[h, w]| [multiple_of_32(h), multiple_of_32(w)]);
    let inputs = (0..spec.modalities.len())
        .map(|m| placeholder(spec, m, run).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(Prepared { present: vec![true; inputs.len()], inputs, out_size: size })
}
