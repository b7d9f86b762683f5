//! Aggregate functions SQLite lacks: MEDIAN and percentiles, MODE,
//! ANY_VALUE, MAX_BY / MIN_BY, variance and standard deviation, ARRAY_AGG.

use super::json::{json_out, json_value};
use super::{JSON_SUBTYPE, compare, det, det_json, fail, owned, real_arg};
use rusqlite::functions::{Aggregate, Context};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};

/// MEDIAN / PERCENTILE_CONT (linear interpolation), PERCENTILE_DISC and Spark's
/// percentile_approx (the smallest value with at least `p` of the values at or below it).
#[derive(Clone, Copy)]
pub(super) enum Percentile {
    Cont,
    Disc,
    Approx,
}

pub(super) struct PercentileAgg(Percentile);

impl Aggregate<(Vec<f64>, Option<f64>), Option<f64>> for PercentileAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<(Vec<f64>, Option<f64>)> {
        Ok((Vec::new(), None))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut (Vec<f64>, Option<f64>)) -> Result<()> {
        if ctx.len() > 1 && acc.1.is_none() {
            let p = real_arg(ctx, 1)?.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&p) {
                return Err(fail(format!("percentile {p} is not between 0 and 1")));
            }
            acc.1 = Some(p);
        }
        if let Some(x) = real_arg(ctx, 0)? {
            acc.0.push(x);
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<(Vec<f64>, Option<f64>)>,
    ) -> Result<Option<f64>> {
        let Some((mut v, p)) = acc else {
            return Ok(None);
        };
        if v.is_empty() {
            return Ok(None);
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let p = p.unwrap_or(0.5);
        let n = v.len();
        Ok(Some(match self.0 {
            Percentile::Cont => {
                let rank = p * (n - 1) as f64;
                let lo = rank.floor() as usize;
                let hi = rank.ceil() as usize;
                v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
            }
            Percentile::Disc | Percentile::Approx => {
                let k = ((p * n as f64).ceil() as usize).clamp(1, n);
                v[k - 1]
            }
        }))
    }
}

/// MODE: the most frequent non-NULL value (the first seen among ties).
pub(super) struct ModeAgg;

impl Aggregate<Vec<(Value, u64)>, Value> for ModeAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Vec<(Value, u64)>> {
        Ok(Vec::new())
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<(Value, u64)>) -> Result<()> {
        let v = owned(ctx.get_raw(0));
        if v == Value::Null {
            return Ok(());
        }
        match acc.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => acc.push((v, 1)),
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Vec<(Value, u64)>>) -> Result<Value> {
        let acc = acc.unwrap_or_default();
        let best = acc.iter().map(|(_, n)| *n).max().unwrap_or(0);
        Ok(acc
            .into_iter()
            .find(|(_, n)| *n == best)
            .map_or(Value::Null, |(v, _)| v))
    }
}

/// ANY_VALUE: the first non-NULL value seen.
pub(super) struct AnyValue;

impl Aggregate<Option<Value>, Value> for AnyValue {
    fn init(&self, _: &mut Context<'_>) -> Result<Option<Value>> {
        Ok(None)
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<Value>) -> Result<()> {
        if acc.is_none() && !matches!(ctx.get_raw(0), ValueRef::Null) {
            *acc = Some(owned(ctx.get_raw(0)));
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Option<Value>>) -> Result<Value> {
        Ok(acc.flatten().unwrap_or(Value::Null))
    }
}

/// max_by / min_by (Spark), MAX_BY / MIN_BY (Snowflake): the value at the extreme key.
pub(super) struct ByAgg(std::cmp::Ordering);

impl Aggregate<Option<(Value, Value)>, Value> for ByAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Option<(Value, Value)>> {
        Ok(None)
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<(Value, Value)>) -> Result<()> {
        let key: Value = owned(ctx.get_raw(1));
        if key == Value::Null {
            return Ok(());
        }
        let better = match acc {
            None => true,
            Some((_, k)) => compare(&key, k) == self.0,
        };
        if better {
            *acc = Some((owned(ctx.get_raw(0)), key));
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Option<(Value, Value)>>) -> Result<Value> {
        Ok(acc.flatten().map_or(Value::Null, |(v, _)| v))
    }
}

/// Sample / population variance and standard deviation.
pub(super) struct VarAgg {
    sample: bool,
    sqrt: bool,
}

impl Aggregate<(f64, f64, u64), Option<f64>> for VarAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<(f64, f64, u64)> {
        Ok((0.0, 0.0, 0))
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut (f64, f64, u64)) -> Result<()> {
        if let Some(x) = real_arg(ctx, 0)? {
            // Welford's online update.
            acc.2 += 1;
            let d = x - acc.0;
            acc.0 += d / acc.2 as f64;
            acc.1 += d * (x - acc.0);
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<(f64, f64, u64)>) -> Result<Option<f64>> {
        let Some((_, m2, n)) = acc else {
            return Ok(None);
        };
        let denom = if self.sample { n.saturating_sub(1) } else { n };
        if denom == 0 {
            return Ok(None);
        }
        let var = m2 / denom as f64;
        Ok(Some(if self.sqrt { var.sqrt() } else { var }))
    }
}

/// ARRAY_AGG / collect_list / collect_set: a JSON array of the non-NULL values.
pub(super) struct ArrayAgg {
    distinct: bool,
}

impl Aggregate<Vec<serde_json::Value>, (Value, Option<u32>)> for ArrayAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Vec<serde_json::Value>> {
        Ok(Vec::new())
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<serde_json::Value>) -> Result<()> {
        let v = json_value(ctx.get_raw(0), ctx.get_subtype(0) == JSON_SUBTYPE);
        let skip = v.is_null() || (self.distinct && acc.contains(&v));
        if !skip {
            acc.push(v);
        }
        Ok(())
    }
    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<Vec<serde_json::Value>>,
    ) -> Result<(Value, Option<u32>)> {
        Ok(json_out(&serde_json::Value::Array(acc.unwrap_or_default())))
    }
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    for (name, kind) in [
        ("sbx_percentile_cont", Percentile::Cont),
        ("sbx_percentile_disc", Percentile::Disc),
        ("sbx_percentile_approx", Percentile::Approx),
    ] {
        conn.create_aggregate_function(name, 2, det(), PercentileAgg(kind))?;
    }
    conn.create_aggregate_function("sbx_median", 1, det(), PercentileAgg(Percentile::Cont))?;
    conn.create_aggregate_function("sbx_any_value", 1, det(), AnyValue)?;
    conn.create_aggregate_function("sbx_mode", 1, det(), ModeAgg)?;
    conn.create_aggregate_function("sbx_max_by", 2, det(), ByAgg(std::cmp::Ordering::Greater))?;
    conn.create_aggregate_function("sbx_min_by", 2, det(), ByAgg(std::cmp::Ordering::Less))?;
    for (name, sample, sqrt) in [
        ("sbx_var_samp", true, false),
        ("sbx_var_pop", false, false),
        ("sbx_stddev_samp", true, true),
        ("sbx_stddev_pop", false, true),
    ] {
        conn.create_aggregate_function(name, 1, det(), VarAgg { sample, sqrt })?;
    }
    conn.create_aggregate_function("sbx_array_agg", 1, det_json(), ArrayAgg { distinct: false })?;
    conn.create_aggregate_function(
        "sbx_array_agg_distinct",
        1,
        det_json(),
        ArrayAgg { distinct: true },
    )?;
    Ok(())
}
