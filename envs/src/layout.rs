//! The feature layout of a teaching observation: its column names, shared by every
//! observation of one env, and columns looked up by name against it.
//!
//! A teacher never holds a bare column index. It either reads a column by name from the
//! observation it is given ([`TeachingObservation::column`]), or resolves a [`Column`]
//! once against a layout ([`FeatureLayout::column`]) and reads it with
//! [`TeachingObservation::at`], which uses the resolved position only on an observation
//! of that layout and looks the name up again on any other. A column resolved against
//! one env and read from an env whose columns differ (for example one with
//! `irreducible_loss` inserted after the labels) is then the column of the same name,
//! or an error naming it, never a silently shifted column. A learned policy reads its
//! trained columns by name ([`FeatureLayout::positions_in`]), or fails naming the
//! differences and the setting that causes them.
//!
//! [`TeachingObservation::column`]: crate::TeachingObservation::column
//! [`TeachingObservation::at`]: crate::TeachingObservation::at

use std::sync::Arc;

use crate::error::{EnvError, Result};

/// The column names of a feature matrix, in order; cheap to clone (one shared
/// allocation), so every observation of an env carries it.
///
/// A layout read from a checkpoint written before layouts were stored knows only its
/// width ([`FeatureLayout::unnamed`]): it matches any layout of that width.
#[derive(Clone)]
pub struct FeatureLayout {
    names: Arc<[String]>,
    named: bool,
}

impl FeatureLayout {
    /// The layout with columns `names`, in order.
    pub fn new(names: Vec<String>) -> Self {
        Self {
            names: names.into(),
            named: true,
        }
    }

    /// A layout known only by its width, `width` columns called `column_0..`: what a
    /// checkpoint of an earlier build, which stored no names, can say of its columns.
    pub fn unnamed(width: usize) -> Self {
        Self {
            names: (0..width).map(|i| format!("column_{i}")).collect(),
            named: false,
        }
    }

    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the names are real (false for [`FeatureLayout::unnamed`]).
    pub fn is_named(&self) -> bool {
        self.named
    }

    /// The number of columns F.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the layout has no column.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether a column is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The column called `name`; [`EnvError::UnknownFeature`] naming it and listing the
    /// layout's columns where there is none.
    pub fn column(&self, name: &str) -> Result<Column> {
        match self.names.iter().position(|n| n == name) {
            Some(index) if self.named => Ok(Column {
                layout: self.clone(),
                index,
            }),
            _ => Err(EnvError::UnknownFeature {
                name: name.to_string(),
                available: self.describe(),
            }),
        }
    }

    /// Whether an observation of `other` can be read with columns of `self`: the same
    /// allocation, the same names in the same order, or (for an unnamed layout on either
    /// side) the same width.
    pub fn matches(&self, other: &FeatureLayout) -> bool {
        Arc::ptr_eq(&self.names, &other.names)
            || (self.len() == other.len()
                && (!self.named || !other.named || self.names == other.names))
    }

    /// Where each column of `self` (a reader's layout) stands in `found` (an
    /// observation's), where that mapping by name is exact: `found` has every column of
    /// `self`, and the same classes (its other columns are features the reader was not
    /// trained on, such as `irreducible_loss` or `sentence_length`, never another
    /// class's `label_c` or `prob_c`, whose probabilities would mean something else).
    /// [`EnvError::LayoutMismatch`], naming the differences and their cause, otherwise.
    pub fn positions_in(&self, found: &FeatureLayout) -> Result<Vec<usize>> {
        let is_class = |name: &str| name.starts_with("label_") || name.starts_with("prob_");
        let positions = (self.names.iter())
            .map(|name| found.names.iter().position(|n| n == name))
            .collect::<Option<Vec<usize>>>();
        match positions {
            Some(positions)
                if self.named
                    && found.named
                    && !(found.names.iter()).any(|n| is_class(n) && !self.contains(n)) =>
            {
                Ok(positions)
            }
            _ => Err(EnvError::LayoutMismatch {
                differences: self.differences(found),
            }),
        }
    }

    /// The differences between `self` (expected) and `other` (found), in words: the
    /// columns only one of them has, or the first position where their orders differ,
    /// and the setting that usually causes them.
    pub fn differences(&self, other: &FeatureLayout) -> String {
        if !self.named || !other.named {
            return format!(
                "{} columns expected, {} found (one side's names are unknown: a checkpoint \
                 of an earlier build knows only its width)",
                self.len(),
                other.len()
            );
        }
        let missing: Vec<&str> = (self.names.iter())
            .filter(|n| !other.contains(n))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = (other.names.iter())
            .filter(|n| !self.contains(n))
            .map(String::as_str)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("not expected {}", extra.join(", ")));
        }
        if parts.is_empty() {
            if let Some((i, (a, b))) = (self.names.iter().zip(other.names.iter()))
                .enumerate()
                .find(|(_, (a, b))| a != b)
            {
                parts.push(format!(
                    "the same columns in another order (column {i} is `{b}`, expected `{a}`)"
                ));
            }
        }
        let mut text = format!(
            "{} ({} columns expected, {} found)",
            parts.join("; "),
            self.len(),
            other.len()
        );
        let cause = causes(missing.iter().chain(&extra).copied());
        if !cause.is_empty() {
            text.push_str(&format!("; set by {}", cause.join(" and ")));
        }
        text
    }

    /// The layout as a short text: its width and its names.
    pub fn describe(&self) -> String {
        if self.named {
            format!("{} columns: {}", self.len(), self.names.join(", "))
        } else {
            format!("{} unnamed columns", self.len())
        }
    }
}

/// The settings that add or remove the columns `names`.
fn causes<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'static str> {
    let mut causes = Vec::new();
    for name in names {
        let cause = if name == "irreducible_loss" {
            "`irreducible_loss_feature` (the `[preset]` setting that adds the holdout model's loss)"
        } else if name == "sentence_length" {
            "the task (text datasets add `sentence_length`)"
        } else if name.starts_with("label_") || name.starts_with("prob_") {
            "the number of classes of the task (one `label_c` and one `prob_c` per class)"
        } else {
            continue;
        };
        if !causes.contains(&cause) {
            causes.push(cause);
        }
    }
    causes
}

impl PartialEq for FeatureLayout {
    fn eq(&self, other: &Self) -> bool {
        self.named == other.named && self.names == other.names
    }
}

impl std::fmt::Debug for FeatureLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One feature column, resolved by name against a [`FeatureLayout`]: reading it from
/// an observation of another layout is an error ([`crate::TeachingObservation::at`]).
#[derive(Clone, PartialEq)]
pub struct Column {
    layout: FeatureLayout,
    index: usize,
}

impl Column {
    /// The column's name.
    pub fn name(&self) -> &str {
        &self.layout.names[self.index]
    }

    /// Its position in the layout it was resolved against. Only for that layout: read
    /// observations with [`crate::TeachingObservation::at`], which checks it.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The layout it was resolved against.
    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Column({} at {})", self.name(), self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(names: &[&str]) -> FeatureLayout {
        FeatureLayout::new(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_missing_column_is_named_with_the_layout() {
        let l = layout(&["label_0", "loss", "margin"]);
        assert_eq!(l.column("loss").unwrap().index(), 1);
        let message = l.column("irreducible_loss").unwrap_err().to_string();
        assert!(message.contains("`irreducible_loss`"), "{message}");
        assert!(message.contains("label_0, loss, margin"), "{message}");
    }

    #[test]
    fn differences_name_the_columns_and_the_setting() {
        let without = layout(&["label_0", "iteration", "loss"]);
        let with = layout(&["label_0", "irreducible_loss", "iteration", "loss"]);
        let text = without.differences(&with);
        assert!(text.contains("not expected irreducible_loss"), "{text}");
        assert!(text.contains("irreducible_loss_feature"), "{text}");
        let text = with.differences(&without);
        assert!(text.contains("missing irreducible_loss"), "{text}");
        // Same width, other columns: text's sentence_length against irreducible_loss.
        let text_task = layout(&["label_0", "sentence_length", "iteration", "loss"]);
        assert!(!with.matches(&text_task));
        let text = with.differences(&text_task);
        assert!(text.contains("sentence_length") && text.contains("text datasets"));
        let swapped = layout(&["label_0", "loss", "iteration"]);
        assert!(without.differences(&swapped).contains("another order"));
    }

    #[test]
    fn positions_map_by_name_only_onto_the_same_classes() {
        let trained = layout(&["label_0", "label_1", "prob_0", "prob_1", "loss"]);
        let wider = layout(&[
            "label_0",
            "label_1",
            "irreducible_loss",
            "prob_0",
            "prob_1",
            "loss",
        ]);
        assert_eq!(trained.positions_in(&wider).unwrap(), [0, 1, 3, 4, 5]);
        let more_classes = layout(&[
            "label_0", "label_1", "label_2", "prob_0", "prob_1", "prob_2", "loss",
        ]);
        assert!(trained.positions_in(&more_classes).is_err());
        assert!(wider.positions_in(&trained).is_err());
        assert!(FeatureLayout::unnamed(5).positions_in(&trained).is_err());
    }

    #[test]
    fn unnamed_layouts_match_by_width_and_resolve_no_column() {
        let named = layout(&["a", "b"]);
        assert!(FeatureLayout::unnamed(2).matches(&named));
        assert!(named.matches(&FeatureLayout::unnamed(2)));
        assert!(!FeatureLayout::unnamed(3).matches(&named));
        assert!(FeatureLayout::unnamed(2).column("column_0").is_err());
    }

    proptest! {
        /// Any column resolved by name has that name, and a layout matches exactly the
        /// layouts with the same names in the same order.
        #[test]
        fn columns_resolve_to_their_names(
            names in proptest::collection::btree_set("[a-z]{1,6}", 1..12),
            pick in 0usize..12,
            rotate in 1usize..12,
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let l = FeatureLayout::new(names.clone());
            let name = &names[pick % names.len()];
            let column = l.column(name).unwrap();
            prop_assert_eq!(column.name(), name.as_str());
            prop_assert_eq!(&l.names()[column.index()], name);
            prop_assert!(l.matches(&FeatureLayout::new(names.clone())));
            let mut rotated = names.clone();
            rotated.rotate_left(rotate % names.len());
            prop_assert_eq!(l.matches(&FeatureLayout::new(rotated.clone())), rotated == names);
        }
    }
}
