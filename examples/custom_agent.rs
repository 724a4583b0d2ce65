//! A user's own teacher, written outside the library, stepping the environment in a
//! plain loop.
//!
//! The teacher drops the lowest-loss quarter of every incoming batch (the instances
//! the student already gets right), finding the loss column by name. It is compared
//! with keeping everything on the synthetic task over a few seeds.
//!
//! Run: `cargo run --release --example custom_agent`

use anyhow::Result;
use l2t::envs::{Env, TeachingEnv};
use l2t::tasks::SyntheticTask;
use ndarray::Array1;

/// Drops the `drop_share` of each batch with the smallest loss.
struct DropEasiest {
    loss_column: usize,
    drop_share: f64,
}

impl DropEasiest {
    fn keep_mask(&self, features: &ndarray::Array2<f32>) -> Array1<bool> {
        let losses = features.column(self.loss_column);
        let mut by_loss: Vec<usize> = (0..losses.len()).collect();
        by_loss.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]));
        let dropped = (losses.len() as f64 * self.drop_share).floor() as usize;
        let mut keep = Array1::from_elem(losses.len(), true);
        for &i in &by_loss[..dropped] {
            keep[i] = false;
        }
        keep
    }
}

/// One episode with a policy given as a closure; returns (reward, iterations to tau).
fn episode(
    env: &mut TeachingEnv,
    seed: u64,
    policy: impl Fn(&ndarray::Array2<f32>) -> Array1<bool>,
) -> Result<(f64, Option<usize>)> {
    let (mut observation, _info) = env.reset(Some(seed))?;
    let mut total_reward = 0.0;
    loop {
        let keep_mask = policy(&observation.features);
        let step = env.step(&keep_mask)?;
        total_reward += step.reward;
        if step.terminated || step.truncated {
            return Ok((total_reward, step.info.iterations_to_tau));
        }
        observation = step.observation;
    }
}

fn main() -> Result<()> {
    tch::set_num_threads(1);
    let (mut env, _data) = SyntheticTask::default().build()?;
    let loss_column = env
        .feature_index("loss")
        .ok_or_else(|| anyhow::anyhow!("the environment has no `loss` feature"))?;
    let teacher = DropEasiest {
        loss_column,
        drop_share: 0.25,
    };
    let m = env.config().batch_size;
    println!("feature columns: {}", env.feature_names().join(", "));
    println!(
        "{:>4}  {:>22}  {:>22}",
        "seed", "drop-easiest reward/i_tau", "keep-all reward/i_tau"
    );
    for seed in 0..5 {
        let (reward, i_tau) = episode(&mut env, seed, |f| teacher.keep_mask(f))?;
        let (base_reward, base_i_tau) =
            episode(&mut env, seed, |f| Array1::from_elem(f.nrows(), true))?;
        let show = |i: Option<usize>| {
            i.map_or("not reached".to_string(), |i| {
                format!("{i} ({} inst.)", i * m)
            })
        };
        println!(
            "{seed:>4}  {reward:>6.3} / {:<14}  {base_reward:>6.3} / {:<14}",
            show(i_tau),
            show(base_i_tau)
        );
    }
    Ok(())
}
