//! The Rust side of the Python binding's overhead measurement
//! (`python/bench/step_overhead.py`): steps a preset's teacher env with a fixed mask
//! pattern and prints the seconds spent in `step` (resets excluded) as JSON.
//!
//! `cargo run --release -p l2t-python --example step_loop -- <preset> <steps> <seed>`

use std::time::Instant;

use l2t::presets::{default_data_dir, Preset};
use l2t_envs::Env;
use ndarray::Array1;

/// The mask of step `t` (`python/tests/conftest.py::pattern_mask`).
fn mask(t: usize, m: usize) -> Array1<bool> {
    Array1::from_shape_fn(m, |i| {
        t.is_multiple_of(4) || !(t * 7 + i * 3).is_multiple_of(5)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(steps), Some(seed)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err("usage: step_loop <preset> <steps> <seed>".into());
    };
    let (steps, seed): (usize, u64) = (steps.parse()?, seed.parse()?);
    tch::set_num_threads(1);
    let preset = Preset::named(name)?;
    let mut env = preset.build(&default_data_dir())?.teacher_env;
    let m = env.config().batch_size;
    env.reset(Some(seed))?;
    let (mut seconds, mut checksum) = (0.0, 0.0f64);
    for t in 0..steps {
        let action = mask(t, m);
        let start = Instant::now();
        let step = env.step(&action)?;
        seconds += start.elapsed().as_secs_f64();
        checksum += step.reward + f64::from(step.observation.features[[0, 0]]);
        if step.done() {
            env.reset(None)?;
        }
    }
    println!(
        "{}",
        serde_json::json!({"preset": name, "steps": steps, "seconds": seconds, "checksum": checksum})
    );
    Ok(())
}
