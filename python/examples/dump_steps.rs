//! Reference trace of the Rust env for the Python package's determinism test
//! (`python/tests/test_determinism.py`): builds the `synthetic` preset's teacher env with
//! the plain Rust API, runs episodes with a fixed mask pattern, and writes each
//! observation's f32 bits, each reward's f64 bits, the flags and the info as JSON lines.
//!
//! `cargo run -p l2t-python --example dump_steps -- <out.jsonl> <seed> <steps>`

use std::io::Write;

use l2t::experiment::with_irreducible_loss_feature;
use l2t::presets::{default_cache_dir, default_data_dir, Preset};
use l2t_envs::{Env, Reward, TeachingInfo, TeachingObservation};
use ndarray::Array1;

/// The mask of step `t` (the Python test uses the same formula).
fn mask(t: usize, m: usize) -> Array1<bool> {
    Array1::from_shape_fn(m, |i| {
        t.is_multiple_of(4) || !(t * 7 + i * 3).is_multiple_of(5)
    })
}

fn line(
    kind: &str,
    o: &TeachingObservation,
    reward: f64,
    flags: (bool, bool),
    info: &TeachingInfo,
) -> String {
    let bits: Vec<u32> = o.features.iter().map(|x| x.to_bits()).collect();
    serde_json::json!({
        "kind": kind,
        "shape": o.features.shape(),
        "obs_bits": bits,
        "reward_bits": reward.to_bits().to_string(),
        "terminated": flags.0,
        "truncated": flags.1,
        "info": info,
    })
    .to_string()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(seed), Some(steps)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err("usage: dump_steps <out.jsonl> <seed> <steps>".into());
    };
    let (seed, steps): (u64, usize) = (seed.parse()?, steps.parse()?);
    tch::set_num_threads(1);
    // The overrides the test passes as `teaching={...}`: short episodes with a reward
    // at every evaluation, so that rewards, terminations and resets are all compared.
    let mut preset = Preset::named("synthetic")?;
    preset.teaching.max_iterations = 30;
    preset.teaching.eval_every = 5;
    preset.teaching.reward = Reward::DevAccuracyArea { iterations: 30 };
    // With the `irreducible_loss` column, as the Python env has it by default (the
    // preset's run has it): the same holdout losses, from the same cache.
    let envs = preset.build(&default_data_dir())?;
    let cache = default_cache_dir().join("irreducible");
    let mut env = with_irreducible_loss_feature(envs, &preset, &cache)?.teacher_env;
    let m = env.config().batch_size;
    let mut lines = Vec::new();
    let (o, info) = env.reset(Some(seed))?;
    lines.push(line("reset", &o, 0.0, (false, false), &info));
    for t in 0..steps {
        let step = env.step(&mask(t, m))?;
        lines.push(line(
            "step",
            &step.observation,
            step.reward,
            (step.terminated, step.truncated),
            &step.info,
        ));
        if step.done() {
            let (o, info) = env.reset(None)?;
            lines.push(line("reset", &o, 0.0, (false, false), &info));
        }
    }
    let mut file = std::fs::File::create(out)?;
    for l in lines {
        writeln!(file, "{l}")?;
    }
    Ok(())
}
