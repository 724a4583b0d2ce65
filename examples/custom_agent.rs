//! A user's own teacher, written outside the library.
//!
//! The teacher drops the lowest-loss quarter of every incoming batch (the instances
//! the student already gets right), reading the loss column by name from each
//! observation (which carries its columns' names). It implements the
//! library's `Teacher` trait, so it plugs into `run_episode` and the comparisons like
//! the built-in teachers; here it steps the environment in a plain loop, next to a
//! keep-everything baseline, over a few seeds of the synthetic task.
//!
//! Run: `cargo run --release --example custom_agent`

use anyhow::Result;
use l2t::agents::{KeepMask, Teacher};
use l2t::envs::{Env, TeachingEnv, TeachingInfo, TeachingObservation};
use l2t::tasks::SyntheticTask;

/// Drops the `drop_share` of each batch with the smallest loss.
struct DropEasiest {
    drop_share: f64,
}

impl Teacher for DropEasiest {
    fn name(&self) -> &str {
        "drop-easiest"
    }

    fn columns(&self) -> Vec<String> {
        vec!["loss".into()]
    }

    fn act(
        &mut self,
        observation: &TeachingObservation,
        _info: &TeachingInfo,
    ) -> l2t::agents::Result<KeepMask> {
        let losses = observation.column("loss")?;
        let mut by_loss: Vec<usize> = (0..losses.len()).collect();
        by_loss.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]));
        let dropped = (losses.len() as f64 * self.drop_share).floor() as usize;
        let mut keep = KeepMask::from_elem(losses.len(), true);
        for &i in &by_loss[..dropped] {
            keep[i] = false;
        }
        Ok(keep)
    }
}

/// Keeps everything.
struct KeepAll;

impl Teacher for KeepAll {
    fn name(&self) -> &str {
        "keep-all"
    }

    fn act(
        &mut self,
        observation: &TeachingObservation,
        _info: &TeachingInfo,
    ) -> l2t::agents::Result<KeepMask> {
        Ok(KeepMask::from_elem(observation.features.nrows(), true))
    }
}

/// One episode in a plain loop; returns (total reward, iterations to tau).
fn episode(
    env: &mut TeachingEnv,
    teacher: &mut dyn Teacher,
    seed: u64,
) -> Result<(f64, Option<usize>)> {
    let (mut observation, mut info) = env.reset(Some(seed))?;
    let mut total_reward = 0.0;
    loop {
        let keep_mask = teacher.act(&observation, &info)?;
        let step = env.step(&keep_mask)?;
        total_reward += step.reward;
        if step.terminated || step.truncated {
            return Ok((total_reward, step.info.iterations_to_tau));
        }
        observation = step.observation;
        info = step.info;
    }
}

fn main() -> Result<()> {
    tch::set_num_threads(1);
    let (mut env, _data) = SyntheticTask::default().build()?;
    let mut teacher = DropEasiest { drop_share: 0.25 };
    let m = env.config().batch_size;
    println!("feature columns: {}", env.feature_names().join(", "));
    println!(
        "{:>4}  {:>26}  {:>26}",
        "seed", "drop-easiest reward / i_tau", "keep-all reward / i_tau"
    );
    let show = |i: Option<usize>| {
        i.map_or("not reached".to_string(), |i| {
            format!("{i} ({} inst.)", i * m)
        })
    };
    for seed in 0..5 {
        let (reward, i_tau) = episode(&mut env, &mut teacher, seed)?;
        let (base_reward, base_i_tau) = episode(&mut env, &mut KeepAll, seed)?;
        println!(
            "{seed:>4}  {reward:>6.3} / {:<18}  {base_reward:>6.3} / {:<18}",
            show(i_tau),
            show(base_i_tau)
        );
    }
    Ok(())
}
