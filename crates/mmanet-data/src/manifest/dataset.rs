//! [`ManifestDataset`]: one split of a manifest, rows decoded on demand, missing cells as zero
//! placeholders.

use std::path::PathBuf;
use std::sync::Arc;

use mmanet_core::{ModalityMask, ModalitySet};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::augment::{AugmentGroup, groups};
use super::{Cell, ManifestDecoder, Row, decode_cell};
use crate::dataset::{get_via_into, index_error};
use crate::decoded_cache::{DecodedCache, Payload};
use crate::input_spec::Decoder;
use crate::surf::read_augment_into_with;
use crate::{DataError, Dataset, ModalityData, Result, Sample, Target, Task};

/// One split of a manifest.
pub(super) struct ManifestDataset {
    path: PathBuf,
    rows: Vec<Row>,
    labels: Vec<i64>,
    set: ModalitySet,
    task: Task,
    decoders: Vec<Decoder>,
    /// Per modality: a random horizontal flip (training images without `augment`).
    flips: Vec<bool>,
    /// Training images with `augment`, by shared draws.
    groups: Vec<AugmentGroup>,
    /// Per group: its decoded, first-resized planes per row (`decoded_cache_bytes > 0`).
    caches: Vec<Option<Arc<DecodedCache>>>,
    /// Per modality: the decoded (unflipped) input of each row, for image modalities outside
    /// the groups (`decoded_cache_bytes > 0`).
    image_caches: Vec<Option<Arc<DecodedCache>>>,
    /// Per modality: whether a group writes it.
    grouped: Vec<bool>,
    /// Per modality: the shape every sample has.
    shapes: Vec<Vec<i64>>,
}

impl ManifestDataset {
    /// `train_decoders`: the configured decoders when this is the training split (flips and
    /// augmentations apply), else empty. `cache_bytes`: the decoded-image cache's budget,
    /// shared evenly by the augmentation groups and the other image modalities (0: none).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new<'a>(
        path: PathBuf,
        rows: Vec<Row>,
        labels: Vec<i64>,
        set: ModalitySet,
        task: Task,
        decoders: Vec<Decoder>,
        train_decoders: impl Iterator<Item = &'a ManifestDecoder> + Clone,
        cache_bytes: usize,
    ) -> Self {
        let n = decoders.len();
        let groups = groups(train_decoders.clone());
        let mut grouped = vec![false; n];
        for g in &groups {
            for &m in &g.members {
                grouped[m] = true;
            }
        }
        // The budget in equal shares: one per augmentation group, one per other image modality.
        let is_image = |m: usize| !grouped[m] && matches!(decoders[m], Decoder::Image { .. });
        let shares = groups.len() + (0..n).filter(|&m| is_image(m)).count();
        let share = cache_bytes / shares.max(1);
        let new_cache = || (share > 0).then(|| Arc::new(DecodedCache::new(rows.len(), share)));
        let caches = groups.iter().map(|_| new_cache()).collect();
        let image_caches = (0..n).map(|m| if is_image(m) { new_cache() } else { None }).collect();
        let mut flips = vec![false; n];
        for (m, d) in train_decoders.enumerate() {
            flips[m] = !grouped[m] && matches!(d, ManifestDecoder::Image { flip: true, .. });
        }
        let shapes = decoders
            .iter()
            .map(|d| d.fixed_shape().expect("manifest decoders have fixed shapes"))
            .collect();
        ManifestDataset {
            path,
            rows,
            labels,
            set,
            task,
            decoders,
            flips,
            groups,
            caches,
            image_caches,
            grouped,
            shapes,
        }
    }

    fn row(&self, index: usize) -> Result<&Row> {
        self.rows.get(index).ok_or_else(|| index_error(index, self.rows.len()))
    }

    fn column_error(&self, row: &Row, m: usize, e: DataError) -> DataError {
        let name = self.set.modalities()[m].name();
        DataError::list(&self.path, row.line, format!("column `{name}`: {e}"))
    }

    /// Writes modality `m` of `row` into `outs[m]` (zeros when it is missing) and returns the
    /// true lengths of sequence modalities.
    ///
    /// Random draws, in order: one flip per flipped modality whether present or not (the
    /// stream does not depend on what a sample lacks), then each augmentation group's.
    ///
    /// # Shapes
    /// `outs[m]` holds the product of `shapes[m]`.
    fn fill(
        &self,
        index: usize,
        row: &Row,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Vec<Option<i64>>> {
        let flips: Vec<bool> = self.flips.iter().map(|&f| f && rng.random_bool(0.5)).collect();
        let mut lengths = vec![None; self.decoders.len()];
        for (m, decoder) in self.decoders.iter().enumerate() {
            if self.grouped[m] {
                continue;
            }
            let Some(cell) = &row.cells[m] else {
                outs[m].fill(0.0);
                if matches!(decoder, Decoder::Sequence { .. }) {
                    lengths[m] = Some(1);
                }
                continue;
            };
            let cache = match (&self.image_caches[m], cell) {
                (Some(c), Cell::File(p)) => Some((c, std::slice::from_ref(p))),
                _ => None,
            };
            let hit = cache.and_then(|(c, paths)| c.get(index, paths));
            match hit.as_ref().map(|e| &e.payload) {
                Some(Payload::Values(v)) if v.len() == outs[m].len() => outs[m].copy_from_slice(v),
                _ => {
                    let name = self.set.modalities()[m].name();
                    let x = decode_cell(decoder, cell, &self.path, row.line, name)?;
                    if x.data.len() != outs[m].len() {
                        let e = DataError::shape("decoded modality", outs[m].len(), x.data.len());
                        return Err(self.column_error(row, m, e));
                    }
                    outs[m].copy_from_slice(&x.data);
                    lengths[m] = x.length;
                    if let Some((c, paths)) = cache {
                        c.insert(index, paths, Payload::Values(x.data));
                    }
                }
            }
            if flips[m] {
                flip_rows(outs[m], &self.shapes[m]);
            }
        }
        for (g, cache) in self.groups.iter().zip(&self.caches) {
            let mut present = Vec::with_capacity(g.members.len());
            let mut paths = Vec::with_capacity(g.members.len());
            for &m in &g.members {
                match &row.cells[m] {
                    Some(Cell::File(p)) => {
                        present.push(m);
                        paths.push(p.clone());
                    }
                    // Image cells are paths; anything else is a missing image.
                    Some(Cell::Values(_)) | None => outs[m].fill(0.0),
                }
            }
            let mut slots: Vec<&mut [f32]> = outs
                .iter_mut()
                .enumerate()
                .filter(|(m, _)| present.contains(m))
                .map(|(_, o)| &mut **o)
                .collect();
            let cache = cache.as_deref().map(|c| (c, index));
            read_augment_into_with(&paths, &g.augment, g.out, cache, rng, &mut slots, |k, e| {
                self.column_error(row, present[k], e)
            })?;
        }
        Ok(lengths)
    }
}

impl Dataset for ManifestDataset {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn modalities(&self) -> &ModalitySet {
        &self.set
    }

    fn task(&self) -> Task {
        self.task
    }

    fn decoded_cache_stats(&self) -> Option<crate::decoded_cache::CacheStats> {
        let caches = self.caches.iter().chain(&self.image_caches).flatten();
        crate::decoded_cache::CacheStats::sum(caches.map(|c| &**c))
    }

    fn availability(&self, index: usize) -> ModalityMask {
        self.rows
            .get(index)
            .and_then(|r| {
                ModalityMask::from_positions(
                    r.cells.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(m, _)| m),
                )
                .ok()
            })
            .unwrap_or_else(|| self.set.full())
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        if self.fixed_shapes().is_some() {
            return get_via_into(self, index, rng);
        }
        let row = self.row(index)?;
        let mut data: Vec<Vec<f32>> =
            self.shapes.iter().map(|s| vec![0f32; s.iter().product::<i64>() as usize]).collect();
        let mut outs: Vec<&mut [f32]> = data.iter_mut().map(Vec::as_mut_slice).collect();
        let lengths = self.fill(index, row, rng, &mut outs)?;
        let inputs = data
            .into_iter()
            .zip(&self.shapes)
            .zip(lengths)
            .map(|((d, shape), length)| match length {
                Some(t) => ModalityData::sequence(d, shape.clone(), t),
                None => ModalityData::new(d, shape.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Sample { inputs, target: Target::Class(self.labels[index]) })
    }

    /// Every modality but sequences (which carry their true length) has one shape.
    fn fixed_shapes(&self) -> Option<Vec<Vec<i64>>> {
        let sequence = self.decoders.iter().any(|d| matches!(d, Decoder::Sequence { .. }));
        (!sequence).then(|| self.shapes.clone())
    }

    fn get_into(
        &self,
        index: usize,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Target> {
        let row = self.row(index)?;
        if outs.len() != self.shapes.len() {
            return Err(DataError::shape("manifest outputs", self.shapes.len(), outs.len()));
        }
        self.fill(index, row, rng, outs)?;
        Ok(Target::Class(self.labels[index]))
    }
}

/// Mirrors a `[C, H, W]` array left to right.
///
/// # Shapes
/// `data` holds the product of `shape` values.
fn flip_rows(data: &mut [f32], shape: &[i64]) {
    if let [_, _, w] = shape[..] {
        for row in data.chunks_exact_mut(w as usize) {
            row.reverse();
        }
    }
}
