//! Your own teacher in a full comparison: the same students and seeds as the built-in
//! teachers, the same `summary.md` (with the paired difference to NoTeach), CSVs,
//! `events.jsonl` and figures.
//!
//! The teacher keeps what the student still gets wrong or is unsure of: instances whose
//! margin (p_y minus the best other class's probability) is below 0.5. It reads the
//! margin by name from each observation, so it reads the right column whatever the run
//! adds: the run config here, like every preset's, adds `irreducible_loss` after the
//! labels. It declares the column, so the run checks it before the first episode and
//! lists it in the run folder. It is compared with NoTeach and online batch selection
//! on the synthetic task (no data to fetch).
//!
//! Run: `cargo run --release --example compare_your_teacher` (writes `runs/compare-your-teacher`).

use anyhow::Result;
use l2t::agents::{KeepMask, OnlineBatchConfig, Teacher, TeacherConfig};
use l2t::config::{RunConfig, TeacherEntry};
use l2t::envs::{TeachingInfo, TeachingObservation};
use l2t::experiment::{run_with, UserTeacher};
use l2t::presets::Preset;
use l2t::run_dir::RunDir;

/// Keeps the instances whose margin is below 0.5.
struct KeepUnsure;

impl Teacher for KeepUnsure {
    fn name(&self) -> &str {
        "keep-unsure"
    }

    fn columns(&self) -> Vec<String> {
        vec!["margin".into()]
    }

    fn act(
        &mut self,
        obs: &TeachingObservation,
        _: &TeachingInfo,
    ) -> l2t::agents::Result<KeepMask> {
        Ok(obs.column("margin")?.mapv(|margin| margin < 0.5))
    }
}

fn main() -> Result<()> {
    l2t::tch::set_num_threads(1);
    let mut config = RunConfig::reproduction(Preset::synthetic());
    config.teachers = vec![
        TeacherEntry::new("no_teach", TeacherConfig::NoTeach),
        TeacherEntry::new(
            "online_batch",
            TeacherConfig::OnlineBatch(OnlineBatchConfig::default()),
        ),
    ];
    let mine = UserTeacher::new("Keep unsure (mine)", KeepUnsure);
    let mut out = RunDir::create(std::path::Path::new("runs/compare-your-teacher"))?;
    let report = run_with(
        &config,
        vec![mine],
        std::path::Path::new("."),
        &mut out,
        |_| {},
    )?;
    println!("{}", report.table());
    println!("run folder: {}", out.root().display());
    Ok(())
}
