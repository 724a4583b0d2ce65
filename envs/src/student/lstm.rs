//! The LSTM text classifier of the paper's IMDB task: token embedding, a single-layer
//! unidirectional LSTM (128 hidden units in RL4Data), dropout and a linear layer to the
//! classes, trained with Adam ([`super::adam::Adam`], gradient norm clipped as the
//! config asks).
//!
//! Inputs are int64 token ids `[n, L]`, right-padded with id 0, with the true lengths
//! in [`Batch::lengths`]. The sentence representation is the LSTM output at each
//! sequence's last real token (position `length - 1`). With a unidirectional LSTM and
//! right padding this is exact: the output at step `t` depends on tokens `0..=t` only,
//! so padding never changes an instance's logits, whatever its batch partners. Each
//! batch is cut to its longest sequence before the LSTM runs. Without lengths every
//! sequence counts as `L` tokens long.
//!
//! Initialisation, drawn from the environment's stream by [`init_from_stream`], follows
//! PyTorch's defaults: embedding normal(0, 1) with the padding row 0 set to zero (its
//! gradient is always zero, so it stays zero); LSTM weights and biases uniform in
//! `±1/sqrt(hidden_size)`; the linear layer uniform in `±1/sqrt(fan_in)`.
//!
//! Dropout masks come from the `noise_rng` of [`Student::train_step`], never from
//! libtorch's generator; [`Student::logits`] applies no dropout.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, nn::RNN, Device, Kind, Tensor};

use super::adam::StudentOptimizer;
use super::{
    count_parameters, init_from_stream, linear_flops, torch_default_init, Init, OptimizerConfig,
    Student, StudentFlops,
};
use crate::data::{Batch, Dataset};
use crate::error::{invalid_config, EnvError, Result};

/// The token id used for padding (its embedding is zero and never trained).
pub const PADDING_ID: i64 = 0;

/// Architecture, regularisation and optimizer of an LSTM student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmConfig {
    /// Rows of the embedding table: token ids are in `0..vocab_size`, id 0 is padding.
    pub vocab_size: usize,
    /// Width of the token embeddings.
    pub embed_dim: usize,
    /// Hidden units of the LSTM (RL4Data: 128).
    pub hidden_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Dropout probability on the sentence representation, in `[0, 1)`.
    pub dropout: f64,
    /// Maximum global L2 norm of the gradients before each step; `None` disables
    /// clipping.
    #[serde(default)]
    pub grad_clip_norm: Option<f64>,
    /// The optimizer (the paper: Adam).
    pub optimizer: OptimizerConfig,
}

impl LstmConfig {
    /// The IMDB student: embeddings of width 128, 128 LSTM units (RL4Data), dropout 0.5,
    /// gradient norm clipped at 5, 2 classes, Adam with learning rate 1e-3 (Adam's
    /// usual default; the paper gives no value). `vocab_size` counts the padding id
    /// (e.g. 10,000 words plus padding and out-of-vocabulary ids).
    pub fn imdb(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            embed_dim: 128,
            hidden_size: 128,
            num_classes: 2,
            dropout: 0.5,
            grad_clip_norm: Some(5.0),
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-3,
                weight_decay: 0.0,
            },
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.vocab_size < 2 {
            return Err(invalid_config(
                "student.vocab_size",
                format!(
                    "{} must be at least 2 (padding id 0 and one token)",
                    self.vocab_size
                ),
            ));
        }
        if self.embed_dim == 0 {
            return Err(invalid_config("student.embed_dim", "must be positive"));
        }
        if self.hidden_size == 0 {
            return Err(invalid_config("student.hidden_size", "must be positive"));
        }
        if self.num_classes < 2 {
            return Err(invalid_config("student.num_classes", "must be at least 2"));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(invalid_config(
                "student.dropout",
                format!("{} must be in [0, 1)", self.dropout),
            ));
        }
        if let Some(max) = self.grad_clip_norm {
            if !(max.is_finite() && max > 0.0) {
                return Err(invalid_config(
                    "student.grad_clip_norm",
                    format!("{max} must be positive (omit it to disable clipping)"),
                ));
            }
        }
        self.optimizer.validate()
    }
}

/// An embedding-LSTM-linear text classifier, trained with cross-entropy.
pub struct LstmStudent {
    config: LstmConfig,
    vs: nn::VarStore,
    embedding: nn::Embedding,
    lstm: nn::LSTM,
    fc: nn::Linear,
    optimizer: StudentOptimizer,
}

impl std::fmt::Debug for LstmStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LstmStudent")
            .field("config", &self.config)
            .finish()
    }
}

impl LstmStudent {
    /// Builds the network on `device`. Weights are placeholders until [`Student::reset`].
    pub fn new(config: LstmConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let embedding = nn::embedding(
            &root / "embedding",
            config.vocab_size as i64,
            config.embed_dim as i64,
            nn::EmbeddingConfig {
                padding_idx: PADDING_ID,
                ..Default::default()
            },
        );
        let lstm = nn::lstm(
            &root / "lstm",
            config.embed_dim as i64,
            config.hidden_size as i64,
            nn::RNNConfig {
                batch_first: true,
                ..Default::default()
            },
        );
        let fc = nn::linear(
            &root / "fc",
            config.hidden_size as i64,
            config.num_classes as i64,
            Default::default(),
        );
        let optimizer = StudentOptimizer::build(&config.optimizer, &vs)?;
        Ok(Self {
            config,
            vs,
            embedding,
            lstm,
            fc,
            optimizer,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LstmConfig {
        &self.config
    }

    /// The sentence representations `[n, hidden_size]`: the LSTM output at each
    /// sequence's last real token.
    fn encode(&self, batch: &Batch) -> Tensor {
        let device = self.vs.device();
        let tokens = batch.inputs.to_device(device);
        let size = tokens.size();
        let (n, width) = (size[0], size.get(1).copied().unwrap_or(0));
        let hidden = self.config.hidden_size as i64;
        if n == 0 || width == 0 {
            return Tensor::zeros([n, hidden], (Kind::Float, device));
        }
        let lengths = match &batch.lengths {
            Some(lengths) => lengths
                .to_device(device)
                .to_kind(Kind::Int64)
                .clamp(1, width),
            None => Tensor::full([n], width, (Kind::Int64, device)),
        };
        let longest = lengths.max().int64_value(&[]);
        let tokens = tokens.narrow(1, 0, longest);
        let (outputs, _) = self.lstm.seq(&self.embedding.forward(&tokens));
        let index = (lengths - 1).view([n, 1, 1]).expand([n, 1, hidden], false);
        outputs.gather(1, &index, false).squeeze_dim(1)
    }

    /// An inverted-dropout mask `[n, hidden_size]` (kept units scaled by
    /// `1 / (1 - p)`) drawn from `rng`; `None` when dropout is off.
    fn dropout_mask(&self, n: usize, rng: &mut ChaCha8Rng) -> Option<Tensor> {
        let p = self.config.dropout;
        if p <= 0.0 || n == 0 {
            return None;
        }
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        let values: Vec<f32> = (0..n * self.config.hidden_size)
            .map(|_| if rng.gen::<f64>() < keep { scale } else { 0.0 })
            .collect();
        Some(
            Tensor::from_slice(&values)
                .view([n as i64, self.config.hidden_size as i64])
                .to_device(self.vs.device()),
        )
    }

    fn forward(&self, batch: &Batch, mask: Option<&Tensor>) -> Tensor {
        let features = self.encode(batch);
        let features = match mask {
            Some(mask) => features * mask,
            None => features,
        };
        self.fc.forward(&features)
    }
}

/// The initialisation rule of the LSTM student (see the module documentation).
fn lstm_init(name: &str, shape: &[i64], hidden: usize, vs: &nn::VarStore) -> Init {
    if name.starts_with("embedding.") {
        Init::Normal(1.0)
    } else if name.starts_with("lstm.") {
        Init::Uniform(1.0 / (hidden as f64).sqrt())
    } else {
        torch_default_init(name, shape, vs)
    }
}

impl Student for LstmStudent {
    fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    fn num_parameters(&self) -> usize {
        count_parameters(&self.vs)
    }

    /// At every position of the padded length T: the four gates' input and recurrent
    /// matrices (4h x e and 4h x h) with their two biases; then the dense layer on the
    /// last hidden state. The embedding is a lookup (no FLOPs).
    fn flops(&self, data: &Dataset) -> StudentFlops {
        let config = &self.config;
        let length = data.input_shape().first().copied().unwrap_or(0).max(0) as u64;
        let (e, h) = (config.embed_dim, config.hidden_size);
        let step = (2 * 4 * h * (e + h) + 2 * 4 * h) as u64;
        let forward = length * step + linear_flops(h, config.num_classes);
        StudentFlops::new(forward, self.num_parameters(), &config.optimizer)
    }

    fn accepts(&self, data: &Dataset) -> Result<()> {
        let invalid = |reason: String| EnvError::InvalidDataset {
            name: data.name().to_string(),
            reason,
        };
        let kind = data.inputs().kind();
        if kind != Kind::Int64 || data.input_shape().len() != 1 {
            return Err(invalid(format!(
                "inputs are {kind:?} {:?}, the LSTM expects int64 token ids [n, length]",
                data.inputs().size()
            )));
        }
        if !data.has_lengths() {
            return Err(invalid(
                "the LSTM needs the sequence lengths of text data".into(),
            ));
        }
        // One pass over the ids, once: an id outside the table would abort libtorch
        // inside `logits`, which cannot report an error.
        let min = data.inputs().min().int64_value(&[]);
        let max = data.inputs().max().int64_value(&[]);
        if min < 0 || max >= self.config.vocab_size as i64 {
            return Err(invalid(format!(
                "token ids span {min}..={max}, outside the vocabulary 0..{}",
                self.config.vocab_size
            )));
        }
        super::check_num_classes(data, self.config.num_classes, "LSTM")
    }

    fn reset(&mut self, init_rng: &mut ChaCha8Rng) -> Result<()> {
        let vs = &self.vs;
        let hidden = self.config.hidden_size;
        init_from_stream(vs, init_rng, |name, shape| {
            lstm_init(name, shape, hidden, vs)
        });
        tch::no_grad(|| {
            let _ = self.embedding.ws.get(PADDING_ID).fill_(0.0);
        });
        self.optimizer.reset(&self.config.optimizer, &self.vs)?;
        Ok(())
    }

    fn logits(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| self.forward(batch, None))
    }

    fn train_step(&mut self, batch: &Batch, noise_rng: &mut ChaCha8Rng) -> Result<f64> {
        let mask = self.dropout_mask(batch.len(), noise_rng);
        let labels = batch.labels.to_device(self.vs.device());
        let loss = self
            .forward(batch, mask.as_ref())
            .cross_entropy_for_logits(&labels);
        self.optimizer
            .backward_step(&loss, self.config.grad_clip_norm)?;
        Ok(loss.double_value(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{stream_rng, Stream};

    fn tiny_config() -> LstmConfig {
        LstmConfig {
            vocab_size: 20,
            embed_dim: 8,
            hidden_size: 16,
            num_classes: 2,
            dropout: 0.2,
            grad_clip_norm: Some(5.0),
            optimizer: OptimizerConfig::Adam {
                learning_rate: 1e-2,
                weight_decay: 0.0,
            },
        }
    }

    /// `n` right-padded sequences of width `width` over tokens `2..vocab`; the label is
    /// 1 when token 1 occurs.
    fn token_data(n: usize, width: usize, vocab: i64, seed: u64) -> Dataset {
        let mut rng = stream_rng(seed, Stream::Data);
        let mut tokens = vec![PADDING_ID; n * width];
        let mut labels = Vec::with_capacity(n);
        let mut lengths = Vec::with_capacity(n);
        for i in 0..n {
            let len = rng.gen_range(1..=width);
            let positive = i % 2 == 0;
            for t in 0..len {
                tokens[i * width + t] = rng.gen_range(2..vocab);
            }
            if positive {
                tokens[i * width + rng.gen_range(0..len)] = 1;
            }
            labels.push(positive as i64);
            lengths.push(len as i64);
        }
        Dataset::new(
            "tokens",
            Tensor::from_slice(&tokens).view([n as i64, width as i64]),
            Tensor::from_slice(&labels),
            2,
        )
        .unwrap()
        .with_lengths(Tensor::from_slice(&lengths), width)
        .unwrap()
    }

    fn batch_of(tokens: &[&[i64]], width: usize) -> Batch {
        let n = tokens.len();
        let mut flat = vec![PADDING_ID; n * width];
        for (i, seq) in tokens.iter().enumerate() {
            flat[i * width..i * width + seq.len()].copy_from_slice(seq);
        }
        let lengths: Vec<i64> = tokens.iter().map(|s| s.len() as i64).collect();
        Batch {
            inputs: Tensor::from_slice(&flat).view([n as i64, width as i64]),
            labels: Tensor::zeros([n as i64], (Kind::Int64, Device::Cpu)),
            lengths: Some(Tensor::from_slice(&lengths)),
        }
    }

    #[test]
    fn parameter_count() {
        let student = LstmStudent::new(LstmConfig::imdb(10_002), Device::Cpu).unwrap();
        let (v, e, h) = (10_002, 128, 128);
        let expected = v * e + 4 * h * (e + h) + 2 * 4 * h + h * 2 + 2;
        assert_eq!(student.num_parameters(), expected);
    }

    #[test]
    fn rejects_bad_config_and_data() {
        for bad in [
            LstmConfig {
                vocab_size: 1,
                ..tiny_config()
            },
            LstmConfig {
                hidden_size: 0,
                ..tiny_config()
            },
            LstmConfig {
                dropout: 1.0,
                ..tiny_config()
            },
            LstmConfig {
                grad_clip_norm: Some(0.0),
                ..tiny_config()
            },
        ] {
            assert!(LstmStudent::new(bad, Device::Cpu).is_err());
        }
        let student = LstmStudent::new(tiny_config(), Device::Cpu).unwrap();
        let data = token_data(6, 5, 20, 1);
        student.accepts(&data).unwrap();
        let no_lengths = Dataset::new(
            "x",
            data.inputs().shallow_clone(),
            data.labels().shallow_clone(),
            2,
        )
        .unwrap();
        assert!(student.accepts(&no_lengths).is_err());
        let small_vocab = LstmStudent::new(
            LstmConfig {
                vocab_size: 10,
                ..tiny_config()
            },
            Device::Cpu,
        )
        .unwrap();
        assert!(small_vocab.accepts(&data).is_err());
        let floats = Dataset::new(
            "f",
            data.inputs().to_kind(Kind::Float),
            data.labels().shallow_clone(),
            2,
        )
        .unwrap()
        .with_lengths(Tensor::from_slice(&[1i64; 6]), 5)
        .unwrap();
        assert!(student.accepts(&floats).is_err());
    }

    #[test]
    fn loss_falls_and_reset_is_seeded() {
        let data = token_data(32, 12, 20, 2);
        let mut student = LstmStudent::new(tiny_config(), Device::Cpu).unwrap();
        student.accepts(&data).unwrap();
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        let batch = data.slice(0, 32);
        let first_logits = student.logits(&batch);
        assert_eq!(first_logits.size(), [32, 2]);
        let mut noise = stream_rng(1, Stream::Dropout);
        let first = student.train_step(&batch, &mut noise).unwrap();
        let mut last = first;
        for _ in 0..40 {
            last = student.train_step(&batch, &mut noise).unwrap();
        }
        println!("loss {first} -> {last}");
        assert!(last < first * 0.7, "loss {first} -> {last}");
        // The padding embedding stays zero through training.
        assert_eq!(
            student
                .embedding
                .ws
                .get(PADDING_ID)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        assert!(student.logits(&batch).equal(&first_logits));
        student
            .reset(&mut stream_rng(2, Stream::StudentInit))
            .unwrap();
        assert!(!student.logits(&batch).equal(&first_logits));
    }

    #[test]
    fn logits_ignore_padding_and_batch_partners() {
        let mut student = LstmStudent::new(tiny_config(), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(5, Stream::StudentInit))
            .unwrap();
        let short: &[i64] = &[3, 4, 5];
        let long: &[i64] = &[6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let tiny: &[i64] = &[16];
        let alone = student.logits(&batch_of(&[short], 3)).get(0);
        let padded = student.logits(&batch_of(&[short], 16)).get(0);
        let with_long = student.logits(&batch_of(&[long, short], 16)).get(1);
        let with_tiny = student.logits(&batch_of(&[short, tiny], 10)).get(0);
        for other in [&padded, &with_long, &with_tiny] {
            assert!(
                alone.allclose(other, 1e-5, 1e-5, false),
                "{alone} vs {other}"
            );
        }
        // Garbage after the length must not matter either.
        let mut garbage = batch_of(&[&[3, 4, 5, 19, 19]], 5);
        garbage.lengths = Some(Tensor::from_slice(&[3i64]));
        assert!(alone.allclose(&student.logits(&garbage).get(0), 1e-5, 1e-5, false));
    }

    #[test]
    fn dropout_follows_the_noise_stream() {
        let data = token_data(8, 6, 20, 3);
        let batch = data.slice(0, 8);
        let run = |noise_seed: u64| -> Vec<f64> {
            let mut student = LstmStudent::new(tiny_config(), Device::Cpu).unwrap();
            student
                .reset(&mut stream_rng(1, Stream::StudentInit))
                .unwrap();
            let mut noise = stream_rng(noise_seed, Stream::Dropout);
            (0..3)
                .map(|_| student.train_step(&batch, &mut noise).unwrap())
                .collect()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        // Dropout off: the noise stream is not consumed and does not matter.
        let student = LstmStudent::new(
            LstmConfig {
                dropout: 0.0,
                ..tiny_config()
            },
            Device::Cpu,
        )
        .unwrap();
        let mut noise = stream_rng(1, Stream::Dropout);
        assert!(student.dropout_mask(8, &mut noise).is_none());
        assert_eq!(
            noise.gen::<u64>(),
            stream_rng(1, Stream::Dropout).gen::<u64>()
        );
    }

    #[test]
    fn dropout_mask_keeps_the_expected_fraction() {
        let student = LstmStudent::new(
            LstmConfig {
                dropout: 0.5,
                ..tiny_config()
            },
            Device::Cpu,
        )
        .unwrap();
        let mask = student
            .dropout_mask(256, &mut stream_rng(1, Stream::Dropout))
            .unwrap();
        let kept = mask
            .gt(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((kept - 0.5).abs() < 0.03, "kept {kept}");
        assert!(mask.max().double_value(&[]) == 2.0);
    }

    /// Wall time of one LSTM step at batch 16, length 100, vocabulary 10k, 128 hidden,
    /// one thread.
    /// `cargo test --release -p l2t-envs lstm_step_time -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn lstm_step_time() {
        tch::set_num_threads(1);
        let mut student = LstmStudent::new(LstmConfig::imdb(10_000), Device::Cpu).unwrap();
        student
            .reset(&mut stream_rng(1, Stream::StudentInit))
            .unwrap();
        let mut rng = stream_rng(1, Stream::Data);
        let tokens: Vec<i64> = (0..16 * 100).map(|_| rng.gen_range(1..10_000)).collect();
        let batch = Batch {
            inputs: Tensor::from_slice(&tokens).view([16, 100]),
            labels: Tensor::from_slice(&[0i64, 1].repeat(8)),
            lengths: Some(Tensor::full([16], 100, (Kind::Int64, Device::Cpu))),
        };
        let mut noise = stream_rng(1, Stream::Dropout);
        student.train_step(&batch, &mut noise).unwrap();
        let steps = 20;
        let start = std::time::Instant::now();
        for _ in 0..steps {
            student.train_step(&batch, &mut noise).unwrap();
        }
        let per_step = start.elapsed().as_secs_f64() / steps as f64;
        let start = std::time::Instant::now();
        let _ = student.logits(&batch);
        let logits = start.elapsed().as_secs_f64();
        println!("LSTM, batch 16, L 100, vocab 10k, 128 hidden, 1 thread: {:.2} ms/train_step, {:.2} ms/logits", per_step * 1e3, logits * 1e3);
    }
}
