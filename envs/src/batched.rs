//! N teaching episodes driven by one batched MLP student ([`BatchedMlp`]): the
//! vectorised form of [`TeachingEnv`] with an [`MlpStudent`](crate::MlpStudent).
//!
//! [`TeachingEnv`]: crate::TeachingEnv
//!
//! Every env has its own episode bookkeeping (the same `EpisodeState` that
//! [`TeachingEnv`] drives, so the MDP is written once, in `teaching.rs`), its own
//! streams, data order, buffer and student. One vector step runs each phase for all
//! envs at once: the masks are absorbed, the students with M kept instances take one
//! batched Adam step, the due dev evaluations run as one batched forward, and the next
//! incoming batches of all envs are observed by one batched forward and featurised
//! together. Episodes end independently and are reset at once (same-step autoreset,
//! see [`crate::vector`]).
//!
//! With the same seeds and masks, env `i` follows the [`TeachingEnv`] of the same seed:
//! the same data order, updates, iterations and resets, and a student that starts
//! bit-identical. The batched student's arithmetic differs from `MlpStudent` in
//! rounding only (batched matrix products, an unfused Adam multiply-add), so dev
//! accuracies, losses and features agree to float tolerance and, rarely, a threshold
//! can be passed one evaluation earlier or later.
//!
//! Like [`TeachingEnv`], the observation's forward pass is recorded with its graph
//! and reused by the next update when every env updates on exactly its observed
//! incoming batch (all envs keep all M on an empty buffer, e.g. NoTeach); otherwise
//! the update makes its own forward pass.

use ndarray::Array1;
use tch::{Device, Tensor};

use crate::data::Dataset;
use crate::error::Result;
use crate::spaces::MultiBinary;
use crate::student::{BatchedMlp, MlpConfig, RecordedForward};
use crate::teaching::{
    check_splits, featurise, spaces, EpisodeState, TeachingConfig, TeachingInfo,
    TeachingObservation, TeachingObservationSpace, Update,
};
use crate::vector::{check_action_count, env_seed, VecReset, VecStep, VectorEnv};

/// N teaching episodes over one training and dev split, taught to N MLP students that
/// live in one [`BatchedMlp`].
///
/// A step validates every action before it changes anything (a wrong count or a
/// keep-mask of the wrong length is [`crate::EnvError::InvalidAction`]); an error after
/// that (a non-finite training loss, a libtorch error) leaves the envs part-way through
/// the step: reset before stepping again.
pub struct BatchedTeachingEnv {
    config: TeachingConfig,
    student: BatchedMlp,
    train: Dataset,
    dev: Dataset,
    feature_names: Vec<String>,
    observation_space: TeachingObservationSpace,
    action_space: MultiBinary,
    episodes: Vec<EpisodeState>,
    /// Whether observations record their forward for the next update.
    reuse_forward: bool,
    /// The incoming batches of all envs as gathered for the observation: inputs
    /// `[N, M, ...]` and labels `[N, M]`.
    incoming: Option<(Tensor, Tensor)>,
    /// Their forward with its graph, while valid.
    recorded: Option<RecordedForward>,
}

impl std::fmt::Debug for BatchedTeachingEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedTeachingEnv")
            .field("config", &self.config)
            .field("num_envs", &self.episodes.len())
            .field("train", &self.train.name())
            .field("dev", &self.dev.name())
            .finish()
    }
}

impl BatchedTeachingEnv {
    /// `num_envs` teaching episodes of `config`, each with an MLP student of `student`
    /// (Adam only), on `train` and `dev`. Before the first seeded reset env `i` uses the
    /// streams of `config.seed + i`.
    pub fn new(
        config: TeachingConfig,
        student: MlpConfig,
        num_envs: usize,
        train: Dataset,
        dev: Dataset,
        device: Device,
    ) -> Result<Self> {
        config.validate()?;
        let student = BatchedMlp::new(student, num_envs, device)?;
        student.accepts(&train)?;
        student.accepts(&dev)?;
        check_splits(&train, &dev)?;
        let (feature_names, observation_space, action_space) = spaces(&config, &train);
        let episodes = (0..num_envs)
            .map(|i| {
                let mut episode = EpisodeState::new(&config, train.len());
                episode.reseed(config.seed.wrapping_add(i as u64));
                episode
            })
            .collect();
        Ok(Self {
            config,
            student,
            train,
            dev,
            feature_names,
            observation_space,
            action_space,
            episodes,
            reuse_forward: true,
            incoming: None,
            recorded: None,
        })
    }

    /// Turns the reuse of the observation's forward on (the default) or off; the
    /// trajectories are the same either way (a test checks it), only the time differs.
    pub fn set_forward_reuse(&mut self, reuse: bool) {
        self.reuse_forward = reuse;
        self.recorded = None;
    }

    /// The config in force.
    pub fn config(&self) -> &TeachingConfig {
        &self.config
    }

    /// Column names of each feature matrix, as [`TeachingEnv::feature_names`].
    ///
    /// [`TeachingEnv::feature_names`]: crate::TeachingEnv::feature_names
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The observation space of each env.
    pub fn observation_space(&self) -> &TeachingObservationSpace {
        &self.observation_space
    }

    /// The action space of each env (a keep-mask of length M).
    pub fn action_space(&self) -> &MultiBinary {
        &self.action_space
    }

    /// The batched students.
    pub fn student(&self) -> &BatchedMlp {
        &self.student
    }

    /// The training split the teachers filter.
    pub fn train_data(&self) -> &Dataset {
        &self.train
    }

    /// Accuracy of every env's current student on `data` (e.g. the test split).
    pub fn evaluate(&self, data: &Dataset) -> Result<Vec<f64>> {
        self.student.accepts(data)?;
        let all: Vec<usize> = (0..self.episodes.len()).collect();
        self.student.accuracies(&all, data, self.config.eval_chunk)
    }

    /// The info value of env `i`'s current state.
    pub fn info(&self, i: usize) -> Option<TeachingInfo> {
        self.episodes
            .get(i)
            .map(|e| e.info(&self.config, self.train.len(), 0, false))
    }

    /// Starts a new episode in each of `envs`: fresh students from their init streams,
    /// the dev evaluation of iteration 0 (batched), and the first incoming batch.
    fn begin_episodes(&mut self, envs: &[usize]) -> Result<()> {
        for &i in envs {
            self.student
                .reset_student(i, &mut self.episodes[i].init_rng)?;
            self.episodes[i].begin();
        }
        let accuracies = self
            .student
            .accuracies(envs, &self.dev, self.config.eval_chunk)?;
        for (&i, accuracy) in envs.iter().zip(accuracies) {
            self.episodes[i].record_evaluation(&self.config, accuracy);
            self.episodes[i].draw_incoming(self.config.batch_size);
        }
        Ok(())
    }

    /// The observations of `envs`' incoming batches from one batched forward. For all
    /// envs it keeps the gathered batches and, with reuse on, the recorded forward.
    fn observe(&mut self, envs: &[usize], record: bool) -> Result<Vec<TeachingObservation>> {
        let (k, m) = (envs.len() as i64, self.config.batch_size as i64);
        let indices: Vec<i64> = envs
            .iter()
            .flat_map(|&i| self.episodes[i].incoming().iter().copied())
            .collect();
        let batch = self.train.batch(&Tensor::from_slice(&indices));
        let inputs = batch.inputs.view([k, m, -1]);
        let labels = batch.labels.view([k, m]);
        let everyone = envs.len() == self.episodes.len();
        let logits = if record && everyone {
            let recorded = self.student.record_forward(&inputs);
            let values = recorded.values();
            self.recorded = Some(recorded);
            values
        } else {
            self.student.logits(Some(envs), &inputs)
        };
        let states: Vec<[f32; 3]> = envs
            .iter()
            .map(|&i| self.episodes[i].student_state(&self.config, self.train.num_classes()))
            .collect();
        let observations = featurise(
            &self.config,
            &self.train,
            &logits,
            &labels,
            batch.lengths.as_ref().map(|l| l.view([k, m])).as_ref(),
            &states,
        )?;
        // A partial observation (the first ones after resets) leaves the all-env
        // batches stale for the reset envs.
        self.incoming = everyone.then_some((inputs, labels));
        Ok(observations)
    }

    /// One batched Adam step for the envs of `updates`; returns each one's loss.
    fn train(
        &mut self,
        updates: &[(usize, Update)],
        recorded: Option<RecordedForward>,
    ) -> Result<Vec<f64>> {
        let students: Vec<usize> = updates.iter().map(|(i, _)| *i).collect();
        let all_incoming = updates.iter().all(|(_, u)| u.is_incoming);
        if let (Some(recorded), true, true) =
            (recorded, all_incoming, updates.len() == self.episodes.len())
        {
            if let Some((_, labels)) = &self.incoming {
                let labels = labels.shallow_clone();
                return self.student.train_step_on_recorded(recorded, &labels);
            }
        }
        let m = self.config.batch_size as i64;
        let k = students.len() as i64;
        let (inputs, labels) = match (&self.incoming, all_incoming) {
            // Every update is its env's observed batch: gather once, from the
            // observation's rows.
            (Some((inputs, labels)), true) => {
                let index: Vec<i64> = students.iter().map(|&i| i as i64).collect();
                let index = Tensor::from_slice(&index).to_device(inputs.device());
                (
                    inputs.index_select(0, &index),
                    labels.index_select(0, &index),
                )
            }
            _ => {
                let indices: Vec<i64> = updates
                    .iter()
                    .flat_map(|(_, u)| u.indices.iter().copied())
                    .collect();
                let batch = self.train.batch(&Tensor::from_slice(&indices));
                (batch.inputs.view([k, m, -1]), batch.labels.view([k, m]))
            }
        };
        self.student.train_step(&students, &inputs, &labels)
    }
}

impl VectorEnv for BatchedTeachingEnv {
    type Observation = TeachingObservation;
    type Action = Array1<bool>;
    type Info = TeachingInfo;

    fn num_envs(&self) -> usize {
        self.episodes.len()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<VecReset<TeachingObservation, TeachingInfo>> {
        self.recorded = None;
        for (i, episode) in self.episodes.iter_mut().enumerate() {
            if let Some(seed) = env_seed(seed, i) {
                episode.reseed(seed);
            }
        }
        let all: Vec<usize> = (0..self.episodes.len()).collect();
        self.begin_episodes(&all)?;
        let observations = self.observe(&all, self.reuse_forward)?;
        let infos = self
            .episodes
            .iter()
            .map(|e| e.info(&self.config, self.train.len(), 0, true))
            .collect();
        Ok((observations, infos))
    }

    fn step(
        &mut self,
        actions: &[Array1<bool>],
    ) -> Result<VecStep<TeachingObservation, TeachingInfo>> {
        let n = self.episodes.len();
        let m = self.config.batch_size;
        check_action_count(actions.len(), n)?;
        for (episode, mask) in self.episodes.iter().zip(actions) {
            episode.check_action(m, mask)?;
        }
        // The recorded forward is valid only until the weights change.
        let recorded = self.recorded.take();
        let updates: Vec<(usize, Update)> = self
            .episodes
            .iter_mut()
            .zip(actions)
            .enumerate()
            .filter_map(|(i, (episode, mask))| episode.absorb(m, mask).map(|u| (i, u)))
            .collect();
        let mut rewards = vec![0.0; n];
        let mut updated = vec![0usize; n];
        let mut evaluated = vec![false; n];
        if !updates.is_empty() {
            let losses = self.train(&updates, recorded)?;
            let mut due = Vec::new();
            for ((i, _), loss) in updates.iter().zip(losses) {
                updated[*i] = 1;
                if self.episodes[*i].record_update(&self.config, loss)? {
                    due.push(*i);
                }
            }
            let accuracies = self
                .student
                .accuracies(&due, &self.dev, self.config.eval_chunk)?;
            for (&i, accuracy) in due.iter().zip(accuracies) {
                rewards[i] += self.episodes[i].record_evaluation(&self.config, accuracy);
                evaluated[i] = true;
            }
        }
        let mut terminated = vec![false; n];
        let mut truncated = vec![false; n];
        for (i, episode) in self.episodes.iter_mut().enumerate() {
            (terminated[i], truncated[i]) = episode.end_step(&self.config);
            episode.draw_incoming(m);
        }
        let ended: Vec<usize> = (0..n).filter(|&i| terminated[i] || truncated[i]).collect();
        let all: Vec<usize> = (0..n).collect();
        // A recorded forward would go stale when the ended envs' students are reset.
        let mut observations = self.observe(&all, self.reuse_forward && ended.is_empty())?;
        let mut infos: Vec<TeachingInfo> = (0..n)
            .map(|i| {
                self.episodes[i].info(&self.config, self.train.len(), updated[i], evaluated[i])
            })
            .collect();
        let mut final_observations = vec![None; n];
        let mut final_infos = vec![None; n];
        if !ended.is_empty() {
            self.begin_episodes(&ended)?;
            let first = self.observe(&ended, false)?;
            for (&i, observation) in ended.iter().zip(first) {
                final_observations[i] = Some(std::mem::replace(&mut observations[i], observation));
                let info = self.episodes[i].info(&self.config, self.train.len(), 0, true);
                final_infos[i] = Some(std::mem::replace(&mut infos[i], info));
            }
        }
        Ok(VecStep {
            observations,
            rewards,
            terminated,
            truncated,
            infos,
            final_observations,
            final_infos,
        })
    }
}
