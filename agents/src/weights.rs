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

/// The trainable variables of several networks, each network's in name order and
/// prefixed `<prefix>/`, networks in the given order: how a teacher made of an actor
/// and a critic names its variables in a checkpoint (`actor/...`, `critic/...`).
pub fn prefixed_trainable(networks: &[(&str, &nn::VarStore)]) -> Vec<(String, tch::Tensor)> {
    networks
        .iter()
        .flat_map(|(prefix, vs)| {
            named_trainable_in_name_order(vs)
                .into_iter()
                .map(move |(name, t)| (format!("{prefix}/{name}"), t))
        })
        .collect()
}

/// Scalars of an `inputs`-`hidden`-1 network (a linear one when `hidden` is 0): the
/// size of a policy or a critic, `(inputs + 2) hidden + 1` or `inputs + 1`. `None` on
/// overflow, so that a checkpoint's claimed sizes are checked before anything is
/// allocated.
pub fn mlp_parameter_count(inputs: usize, hidden: usize) -> Option<usize> {
    if hidden == 0 {
        return inputs.checked_add(1);
    }
    inputs
        .checked_add(2)
        .and_then(|f| f.checked_mul(hidden))
        .and_then(|n| n.checked_add(1))
}
