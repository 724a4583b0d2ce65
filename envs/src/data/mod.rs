//! Datasets staged as tensors once, and the tasks built from them.
//!
//! A [`Dataset`] holds all inputs and labels of one split as tensors, so that an
//! incoming mini-batch is a single `index_select`, never a copy through Rust vectors.

pub mod cifar;
pub mod fetch;
pub mod idx;
pub mod synthetic;

#[cfg(test)]
pub(crate) mod test_support;
pub mod text;
pub mod transform;

use std::sync::Arc;

use tch::{Kind, Tensor};

use crate::error::{EnvError, Result};

/// One split of a classification dataset, staged as tensors.
#[derive(Debug)]
pub struct Dataset {
    name: String,
    inputs: Tensor,
    labels: Tensor,
    lengths: Option<Tensor>,
    max_length: usize,
    num_classes: usize,
    irreducible_loss: Option<Arc<[f32]>>,
}

/// A mini-batch: rows of a [`Dataset`] selected by index.
#[derive(Debug)]
pub struct Batch {
    /// Inputs, first axis the instances (float features or int64 token ids).
    pub inputs: Tensor,
    /// Class labels, int64, shape `[n]`.
    pub labels: Tensor,
    /// Token counts of text inputs before padding, int64 `[n]`; `None` for non-text.
    pub lengths: Option<Tensor>,
}

impl Batch {
    /// Number of instances.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Whether the batch holds no instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `start..start+len` as a batch of views (no copy).
    pub fn rows(&self, start: usize, len: usize) -> Batch {
        let (start, len) = (start as i64, len as i64);
        Batch {
            inputs: self.inputs.narrow(0, start, len),
            labels: self.labels.narrow(0, start, len),
            lengths: self.lengths.as_ref().map(|l| l.narrow(0, start, len)),
        }
    }
}

impl Dataset {
    /// A dataset from inputs `[n, ...]` and int64 labels `[n]` in `0..num_classes`.
    ///
    /// Checks the first axes agree, `n > 0`, and every label is in range.
    pub fn new(
        name: impl Into<String>,
        inputs: Tensor,
        labels: Tensor,
        num_classes: usize,
    ) -> Result<Self> {
        let name = name.into();
        let invalid = |reason: String| EnvError::InvalidDataset {
            name: name.clone(),
            reason,
        };
        let labels = labels.to_kind(Kind::Int64);
        let n_labels = labels.size();
        if n_labels.len() != 1 {
            return Err(invalid(format!(
                "labels must be 1-d, got shape {n_labels:?}"
            )));
        }
        let n = n_labels[0];
        if n == 0 {
            return Err(invalid("no instance".into()));
        }
        if inputs.size().first() != Some(&n) {
            return Err(invalid(format!(
                "inputs shape {:?} does not start with the {n} labels",
                inputs.size()
            )));
        }
        if num_classes < 2 {
            return Err(invalid(format!("num_classes {num_classes} < 2")));
        }
        let min = labels.min().int64_value(&[]);
        let max = labels.max().int64_value(&[]);
        if min < 0 || max >= num_classes as i64 {
            return Err(invalid(format!(
                "labels span {min}..={max}, outside 0..{num_classes}"
            )));
        }
        Ok(Self {
            name,
            inputs,
            labels,
            lengths: None,
            max_length: 0,
            num_classes,
            irreducible_loss: None,
        })
    }

    /// Attaches one irreducible loss (nats, finite, at least 0) per instance, in
    /// split order: enables the `irreducible_loss` data feature, the loss of a holdout
    /// model that never saw the instance (RHO-LOSS's signal, for learned teachers).
    pub fn with_irreducible_loss(mut self, losses: Vec<f32>) -> Result<Self> {
        let invalid = |reason: String| EnvError::InvalidDataset {
            name: self.name.clone(),
            reason,
        };
        if losses.len() != self.len() {
            return Err(invalid(format!(
                "{} irreducible losses for {} instances",
                losses.len(),
                self.len()
            )));
        }
        if let Some(bad) = losses.iter().find(|l| !(l.is_finite() && **l >= 0.0)) {
            return Err(invalid(format!(
                "irreducible losses must be finite and at least 0, found {bad}"
            )));
        }
        self.irreducible_loss = Some(losses.into());
        Ok(self)
    }

    /// The irreducible losses attached by [`Dataset::with_irreducible_loss`].
    pub fn irreducible_loss(&self) -> Option<&[f32]> {
        self.irreducible_loss.as_deref()
    }

    /// Attaches text lengths (`[n]` int64, each in `1..=max_length`): enables the
    /// sentence-length data feature.
    pub fn with_lengths(mut self, lengths: Tensor, max_length: usize) -> Result<Self> {
        let lengths = lengths.to_kind(Kind::Int64);
        if lengths.size() != [self.len() as i64] || max_length == 0 {
            return Err(EnvError::InvalidDataset {
                name: self.name.clone(),
                reason: format!(
                    "lengths shape {:?} must be [{}] with max_length > 0",
                    lengths.size(),
                    self.len()
                ),
            });
        }
        self.lengths = Some(lengths);
        self.max_length = max_length;
        Ok(self)
    }

    /// Name of the split, used in error messages and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Whether the dataset is empty (never true for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes |Y|.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Shape of one input instance (without the batch axis).
    pub fn input_shape(&self) -> Vec<i64> {
        self.inputs.size()[1..].to_vec()
    }

    /// The maximum text length (0 for non-text data).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Whether the data are text with lengths (adds the sentence-length feature).
    pub fn has_lengths(&self) -> bool {
        self.lengths.is_some()
    }

    /// All labels, `[n]` int64.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// All inputs, `[n, ...]`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The rows at `indices` (int64 tensor, on any device) as a batch, gathered on the
    /// dataset's device.
    pub fn batch(&self, indices: &Tensor) -> Batch {
        let indices = &indices.to_device(self.inputs.device());
        Batch {
            inputs: self.inputs.index_select(0, indices),
            labels: self.labels.index_select(0, indices),
            lengths: self.lengths.as_ref().map(|l| l.index_select(0, indices)),
        }
    }

    /// The contiguous rows `start..start+len` as a batch (no gather).
    pub fn slice(&self, start: usize, len: usize) -> Batch {
        Batch {
            inputs: self.inputs.shallow_clone(),
            labels: self.labels.shallow_clone(),
            lengths: self.lengths.as_ref().map(Tensor::shallow_clone),
        }
        .rows(start, len)
    }

    /// A new dataset of the rows at `indices`, e.g. one half of a split.
    pub fn subset(&self, name: impl Into<String>, indices: &[i64]) -> Result<Self> {
        let index = Tensor::from_slice(indices);
        let batch = self.batch(&index);
        let mut out = Self::new(name, batch.inputs, batch.labels, self.num_classes)?;
        if let Some(lengths) = batch.lengths {
            out = out.with_lengths(lengths, self.max_length)?;
        }
        if let Some(losses) = &self.irreducible_loss {
            let picked = indices
                .iter()
                .map(|&i| usize::try_from(i).ok().and_then(|i| losses.get(i)).copied())
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| EnvError::InvalidDataset {
                    name: self.name.clone(),
                    reason: "subset index out of range".into(),
                })?;
            out = out.with_irreducible_loss(picked)?;
        }
        Ok(out)
    }

    /// A shallow copy sharing the same storage.
    pub fn shallow_clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            inputs: self.inputs.shallow_clone(),
            labels: self.labels.shallow_clone(),
            lengths: self.lengths.as_ref().map(Tensor::shallow_clone),
            max_length: self.max_length,
            num_classes: self.num_classes,
            irreducible_loss: self.irreducible_loss.clone(),
        }
    }

    /// Moves the dataset to `device` once, so batches are gathered there.
    pub fn to_device(&self, device: tch::Device) -> Self {
        Self {
            name: self.name.clone(),
            inputs: self.inputs.to_device(device),
            labels: self.labels.to_device(device),
            lengths: self.lengths.as_ref().map(|l| l.to_device(device)),
            max_length: self.max_length,
            num_classes: self.num_classes,
            irreducible_loss: self.irreducible_loss.clone(),
        }
    }
}

/// The splits a teaching environment needs: the training split the student learns from,
/// the dev split that decides the reward, and a test split kept for reporting.
#[derive(Debug)]
pub struct TaskData {
    /// Instances the teacher filters and the student trains on.
    pub train: Dataset,
    /// Held-out instances whose accuracy defines the reward (D'_dev in the paper).
    pub dev: Dataset,
    /// Instances used only to report results, never seen by teacher or reward.
    pub test: Dataset,
}

impl TaskData {
    /// A shallow copy sharing the same tensors.
    pub fn shallow_clone(&self) -> Self {
        Self {
            train: self.train.shallow_clone(),
            dev: self.dev.shallow_clone(),
            test: self.test.shallow_clone(),
        }
    }
}
