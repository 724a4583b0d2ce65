//! The trainable variables of a teacher's networks in a fixed order: the order of
//! their Adam states ([`l2t_envs::student::Adam::for_var_store`]) and of checkpoints.

use tch::nn;

use crate::error::Result;

pub use l2t_envs::student::named_trainable_in_name_order;

/// The values of the trainable variables of `vs`, flattened and concatenated in name
/// order: for determinism checks and inspection.
pub fn flat_trainable(vs: &nn::VarStore) -> Result<Vec<f32>> {
    let mut flat = Vec::new();
    for (_, variable) in named_trainable_in_name_order(vs) {
        flat.extend(Vec::<f32>::try_from(variable.flatten(0, -1))?);
    }
    Ok(flat)
}
