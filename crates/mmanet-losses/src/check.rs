//! Small shape and kind checks shared by the `f_*` functions.

use tch::{Kind, Tensor};

use crate::{LossError, Result};

/// Fails unless `t` has exactly `rank` dimensions.
pub(crate) fn rank(op: &'static str, input: &'static str, t: &Tensor, rank: usize) -> Result<()> {
    let size = t.size();
    if size.len() == rank {
        Ok(())
    } else {
        Err(LossError::Rank { op, input, expected: rank_words(rank), got: size })
    }
}

/// Fails unless `t` has at least `min` dimensions.
pub(crate) fn min_rank(
    op: &'static str,
    input: &'static str,
    t: &Tensor,
    min: usize,
) -> Result<()> {
    let size = t.size();
    if size.len() >= min {
        Ok(())
    } else {
        let expected = match min {
            1 => "at least 1",
            2 => "at least 2",
            _ => "more",
        };
        Err(LossError::Rank { op, input, expected, got: size })
    }
}

fn rank_words(rank: usize) -> &'static str {
    match rank {
        0 => "0",
        1 => "1",
        2 => "2",
        3 => "3",
        4 => "4",
        _ => "more",
    }
}

/// Fails unless `t` holds floating-point values.
pub(crate) fn float(op: &'static str, input: &'static str, t: &Tensor) -> Result<Kind> {
    let kind = t.f_kind()?;
    if t.f_is_floating_point()? {
        Ok(kind)
    } else {
        Err(LossError::Kind { op, input, expected: "a floating-point kind", got: kind })
    }
}

/// Fails unless `t` holds integers (class indices).
pub(crate) fn integer(op: &'static str, input: &'static str, t: &Tensor) -> Result<()> {
    let kind = t.f_kind()?;
    match kind {
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8 => Ok(()),
        _ => Err(LossError::Kind { op, input, expected: "an integer kind", got: kind }),
    }
}

/// Fails unless `a` and `b` have the same shape.
pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    let (sa, sb) = (a.size(), b.size());
    if sa == sb { Ok(()) } else { Err(LossError::Shape { op, lhs: sa, rhs: sb }) }
}

/// Fails unless dimension `da` of `a` equals dimension `db` of `b`.
pub(crate) fn same_dim(
    op: &'static str,
    a: &Tensor,
    da: usize,
    b: &Tensor,
    db: usize,
) -> Result<()> {
    let (sa, sb) = (a.size(), b.size());
    if sa.get(da) == sb.get(db) { Ok(()) } else { Err(LossError::Shape { op, lhs: sa, rhs: sb }) }
}
