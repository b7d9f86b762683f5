//! The translating visitor: rewrites each query level (QUALIFY, TOP / FETCH,
//! GROUP BY ALL, FLATTEN / explode / LATERAL VIEW into `json_each`) and every
//! expression (platform functions via the per-platform tables, casts, ILIKE,
//! field access on semi-structured values) into SQLite SQL.

use super::{
    DialectError, Env, Ty, binary, binop, call, cast_expr, coerce_literal, databricks, fname,
    has_aggregate, infer, is_flatten, is_string_literal, lit, named_arg, negate, nested, num,
    positional, snowflake, temporal_kind,
};
use crate::result::Platform;
use sqlparser::ast::{
    BinaryOperator, CastKind, Expr, FunctionArg, FunctionArgExpr, GroupByExpr, Ident, JsonPathElem,
    LimitClause, ObjectName, Query, Select, SelectItem, SetExpr, TableAlias, TableFactor,
    TableFunctionArgs, TableWithJoins, TopQuantity, Value, VisitorMut,
};
use std::ops::ControlFlow;

/// Argument types of the expression being translated, computed before its children change.
pub(super) struct Pending {
    pub(super) types: Vec<Option<Ty>>,
}

pub(super) struct Translator {
    pub(super) platform: Platform,
    pub(super) env: Env,
    pub(super) pending: Vec<Pending>,
    pub(super) counter: usize,
    pub(super) top_hidden: usize,
    pub(super) depth: usize,
}

impl Translator {
    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}${}", self.counter)
    }

    /// Types of the direct operands of `expr` that the translation needs.
    fn operand_types(&self, expr: &Expr) -> Vec<Option<Ty>> {
        let t = |e: &Expr| infer(self.platform, e, &self.env);
        match expr {
            Expr::Cast { expr, .. } => vec![t(expr)],
            Expr::BinaryOp { left, right, .. } => vec![t(left), t(right)],
            Expr::Between { expr, .. } => vec![t(expr)],
            Expr::Function(f) => {
                let mut v: Vec<Option<Ty>> = positional(f).iter().map(t).collect();
                for o in &f.within_group {
                    v.push(t(&o.expr));
                }
                v
            }
            Expr::CompoundIdentifier(_) | Expr::CompoundFieldAccess { .. } => vec![],
            _ => vec![],
        }
    }

    fn rewrite(&mut self, expr: &mut Expr, types: &[Option<Ty>]) -> Result<(), DialectError> {
        let ceil = matches!(expr, Expr::Ceil { .. });
        let is_ilike = matches!(expr, Expr::ILike { .. });
        let replacement = match expr {
            Expr::Function(f) => match self.platform {
                Platform::Snowflake => snowflake::function(f, types, &self.env)?,
                Platform::Databricks => databricks::function(f, types, &self.env)?,
            },
            Expr::Cast {
                kind,
                expr: inner,
                data_type,
                ..
            } => {
                let strict = !matches!(kind, CastKind::TryCast | CastKind::SafeCast);
                let from = types.first().cloned().flatten();
                cast_expr(
                    self.platform,
                    (**inner).clone(),
                    data_type,
                    strict,
                    from.as_ref(),
                )
            }
            Expr::TypedString(ts) => {
                let text = match &ts.value.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let dt = ts.data_type.clone();
                Some(
                    cast_expr(self.platform, lit(&text), &dt, true, Some(&Ty::Text))
                        .unwrap_or_else(|| lit(&text)),
                )
            }
            Expr::Like {
                negated,
                expr: inner,
                pattern,
                any: false,
                ..
            } => Some(negate(
                *negated,
                call(
                    "sbx_like",
                    vec![(**inner).clone(), (**pattern).clone(), num(0)],
                ),
            )),
            Expr::ILike {
                negated,
                expr: inner,
                pattern,
                any: false,
                ..
            } => Some(negate(
                *negated,
                call(
                    "sbx_like",
                    vec![(**inner).clone(), (**pattern).clone(), num(1)],
                ),
            )),
            // LIKE ANY / ILIKE ANY ('a%', 'b%'): any of the patterns matches.
            Expr::Like {
                negated,
                expr: inner,
                pattern,
                any: true,
                ..
            }
            | Expr::ILike {
                negated,
                expr: inner,
                pattern,
                any: true,
                ..
            } => {
                let ci = i64::from(is_ilike);
                let patterns = match pattern.as_ref() {
                    Expr::Tuple(v) => v.clone(),
                    Expr::Nested(e) => vec![(**e).clone()],
                    other => vec![other.clone()],
                };
                let mut any: Option<Expr> = None;
                for p in patterns {
                    let one = call("sbx_like", vec![(**inner).clone(), p, num(ci)]);
                    any = Some(match any {
                        None => one,
                        Some(acc) => binop(acc, BinaryOperator::Or, one),
                    });
                }
                any.map(|e| negate(*negated, e))
            }
            Expr::RLike {
                negated,
                expr: inner,
                pattern,
                ..
            } => {
                // Snowflake RLIKE/REGEXP match the whole subject; Spark's search it.
                let whole = i64::from(self.platform == Platform::Snowflake);
                Some(negate(
                    *negated,
                    call(
                        "sbx_regexp_like",
                        vec![(**inner).clone(), (**pattern).clone(), lit(""), num(whole)],
                    ),
                ))
            }
            Expr::Extract {
                field, expr: inner, ..
            } => {
                let f = if self.platform == Platform::Snowflake {
                    "sbx_extract"
                } else {
                    "sbx_extract_spark"
                };
                Some(call(
                    f,
                    vec![lit(&field.to_string().to_lowercase()), (**inner).clone()],
                ))
            }
            Expr::JsonAccess { value, path } => {
                let mut out = (**value).clone();
                for elem in &path.path {
                    let key = match elem {
                        JsonPathElem::Dot { key, .. } => lit(key),
                        JsonPathElem::Bracket { key } | JsonPathElem::ColonBracket { key } => {
                            key.clone()
                        }
                    };
                    out = call("sbx_get", vec![out, key]);
                }
                Some(out)
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut out = (**root).clone();
                for a in access_chain {
                    let key = match a {
                        sqlparser::ast::AccessExpr::Dot(Expr::Identifier(id)) => {
                            out = call("sbx_field", vec![out, lit(&id.value)]);
                            continue;
                        }
                        sqlparser::ast::AccessExpr::Dot(other) => other.clone(),
                        sqlparser::ast::AccessExpr::Subscript(
                            sqlparser::ast::Subscript::Index { index },
                        ) => index.clone(),
                        sqlparser::ast::AccessExpr::Subscript(_) => {
                            return Err(DialectError::Unsupported("array slices".into()));
                        }
                    };
                    out = call("sbx_get", vec![out, key]);
                }
                Some(out)
            }
            Expr::CompoundIdentifier(parts) => self.field_access(parts),
            Expr::Substring {
                expr: inner,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![(**inner).clone()];
                args.push(substring_from.as_deref().cloned().unwrap_or_else(|| num(1)));
                if let Some(n) = substring_for {
                    args.push((**n).clone());
                }
                Some(call("substr", args))
            }
            Expr::Position { expr: needle, r#in } => Some(call(
                "sbx_position",
                vec![(**needle).clone(), (**r#in).clone(), num(1)],
            )),
            Expr::Ceil { expr: inner, field } | Expr::Floor { expr: inner, field } => {
                let name = if ceil { "sbx_ceil" } else { "sbx_floor" };
                let mut args = vec![(**inner).clone()];
                if let sqlparser::ast::CeilFloorKind::Scale(v) = field {
                    args.push(Expr::Value(v.clone()));
                }
                Some(call(name, args))
            }
            Expr::Trim {
                expr: inner,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                let name = match trim_where {
                    Some(sqlparser::ast::TrimWhereField::Leading) => "ltrim",
                    Some(sqlparser::ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "trim",
                };
                let mut args = vec![(**inner).clone()];
                if let Some(w) = trim_what {
                    args.push((**w).clone());
                } else if let Some(chars) = trim_characters
                    && let Some(c) = chars.first()
                {
                    args.push(c.clone());
                }
                Some(call(name, args))
            }
            Expr::BinaryOp { left, op, right } => {
                let lt = types.first().cloned().flatten();
                let rt = types.get(1).cloned().flatten();
                binary(self.platform, left, op, right, lt.as_ref(), rt.as_ref())?
            }
            Expr::Between {
                expr: inner,
                negated,
                low,
                high,
            } => {
                let kind = temporal_kind(types.first().cloned().flatten().as_ref());
                match kind {
                    Some(k) if is_string_literal(low) || is_string_literal(high) => {
                        Some(Expr::Between {
                            expr: inner.clone(),
                            negated: *negated,
                            low: Box::new(coerce_literal((**low).clone(), k)),
                            high: Box::new(coerce_literal((**high).clone(), k)),
                        })
                    }
                    _ => None,
                }
            }
            Expr::Struct { values, .. } => {
                let mut kv = Vec::new();
                for (i, v) in values.iter().enumerate() {
                    let (name, e) = match v {
                        Expr::Named { expr, name } => (name.value.clone(), (**expr).clone()),
                        Expr::Identifier(id) => (id.value.clone(), v.clone()),
                        Expr::CompoundIdentifier(p) => (
                            p.last().map(|p| p.value.clone()).unwrap_or_default(),
                            v.clone(),
                        ),
                        other => (format!("col{}", i + 1), other.clone()),
                    };
                    kv.push(lit(&name));
                    kv.push(e);
                }
                Some(call("sbx_struct", kv))
            }
            Expr::Value(v) if matches!(v.value, Value::Boolean(_)) => {
                let b = matches!(v.value, Value::Boolean(true));
                Some(num(i64::from(b)))
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        Ok(())
    }

    /// Databricks `col.field` / `t.col.field` on a STRUCT or MAP column; FLATTEN's
    /// `f.index` (json_each names it `key`).
    fn field_access(&self, parts: &[Ident]) -> Option<Expr> {
        if parts.len() == 2
            && parts[1].value.eq_ignore_ascii_case("index")
            && self.env.lookup(Some(&parts[0].value), "seq").is_some()
        {
            return Some(Expr::CompoundIdentifier(vec![
                parts[0].clone(),
                Ident::new("key"),
            ]));
        }
        let (base_len, column) = match parts.len() {
            2 if !self.env.is_qualifier(&parts[0].value) => (1, parts[0].value.as_str()),
            n if n >= 3 && self.env.is_qualifier(&parts[0].value) => (2, parts[1].value.as_str()),
            n if n >= 3 => (1, parts[0].value.as_str()),
            _ => return None,
        };
        let qualifier = (base_len == 2).then(|| parts[0].value.as_str());
        let ty = self.env.lookup(qualifier, column)?;
        if !matches!(ty, Ty::Struct(_) | Ty::Map(..) | Ty::Variant | Ty::Object) {
            return None;
        }
        let mut out = if base_len == 1 {
            Expr::Identifier(parts[0].clone())
        } else {
            Expr::CompoundIdentifier(parts[..2].to_vec())
        };
        for p in &parts[base_len..] {
            out = call("sbx_field", vec![out, lit(&p.value)]);
        }
        Some(out)
    }

    /// QUALIFY, TOP, GROUP BY ALL, FLATTEN, explode and LATERAL VIEW on one query level.
    fn restructure(&mut self, query: &mut Query, top: bool) -> Result<(), DialectError> {
        if let Some(fetch) = query.fetch.take()
            && query.limit_clause.is_none()
        {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: fetch.quantity,
                offset: None,
                limit_by: vec![],
            });
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Ok(());
        };
        if let Some(t) = select.top.take() {
            let n = match t.quantity {
                Some(TopQuantity::Constant(n)) => num(n as i64),
                Some(TopQuantity::Expr(e)) => e,
                None => return Err(DialectError::Invalid("TOP without a row count".into())),
            };
            if query.limit_clause.is_none() {
                query.limit_clause = Some(LimitClause::LimitOffset {
                    limit: Some(n),
                    offset: None,
                    limit_by: vec![],
                });
            }
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Ok(());
        };
        self.table_functions(select)?;
        self.generators(select)?;
        if let GroupByExpr::All(_) = &select.group_by {
            let mut ordinals = Vec::new();
            for (i, item) in select.projection.iter().enumerate() {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
                    && !has_aggregate(e)
                    && !matches!(e, Expr::Value(_))
                {
                    ordinals.push(num(i as i64 + 1));
                }
            }
            select.group_by = GroupByExpr::Expressions(ordinals, vec![]);
        }
        if let Some(cond) = select.qualify.take() {
            let hidden = self.qualify(query, cond)?;
            if top {
                self.top_hidden = hidden;
            }
        }
        Ok(())
    }

    /// Wrap a SELECT with QUALIFY into `SELECT .. FROM (SELECT .., cond) WHERE cond`.
    fn qualify(&mut self, query: &mut Query, cond: Expr) -> Result<usize, DialectError> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Ok(0);
        };
        // QUALIFY may name projection aliases: substitute their expressions.
        let mut aliases = Vec::new();
        for item in &select.projection {
            if let SelectItem::ExprWithAlias { expr, alias } = item {
                aliases.push((alias.value.to_lowercase(), expr.clone()));
            }
        }
        let mut cond = cond;
        let _ = sqlparser::ast::visit_expressions_mut(&mut cond, |e| {
            if let Expr::Identifier(id) = e
                && let Some((_, x)) = aliases.iter().find(|(a, _)| *a == id.value.to_lowercase())
            {
                *e = nested(x.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let flag = self.fresh("qualify");
        // Output names for an explicit outer list, when every item has one.
        let mut names = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::ExprWithAlias { alias, .. } => names.push(Some(alias.clone())),
                SelectItem::UnnamedExpr(Expr::Identifier(id)) => names.push(Some(id.clone())),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                    names.push(p.last().cloned())
                }
                _ => names.push(None),
            }
        }
        select.projection.push(SelectItem::ExprWithAlias {
            expr: cond,
            alias: Ident::with_quote('"', flag.clone()),
        });
        // ORDER BY terms that are not output names or ordinals ride along as extra
        // inner columns, so the outer query can still sort by them.
        let mut extra = 0;
        if let Some(order_by) = &mut query.order_by
            && let sqlparser::ast::OrderByKind::Expressions(list) = &mut order_by.kind
        {
            for o in list.iter_mut() {
                let named = match &o.expr {
                    Expr::Identifier(id) => names
                        .iter()
                        .flatten()
                        .any(|n| n.value.eq_ignore_ascii_case(&id.value)),
                    Expr::Value(_) => true,
                    _ => false,
                };
                if named {
                    continue;
                }
                let col = self.fresh("order");
                select.projection.push(SelectItem::ExprWithAlias {
                    expr: o.expr.clone(),
                    alias: Ident::with_quote('"', col.clone()),
                });
                o.expr = Expr::Identifier(Ident::with_quote('"', col));
                extra += 1;
            }
        }
        let inner = Query {
            with: None,
            body: query.body.clone(),
            order_by: None,
            limit_clause: None,
            fetch: None,
            locks: vec![],
            for_clause: None,
            settings: None,
            format_clause: None,
            pipe_operators: vec![],
        };
        let explicit = names.iter().all(Option::is_some);
        let projection = if explicit {
            names
                .into_iter()
                .flatten()
                .map(|n| SelectItem::ExprWithAlias {
                    expr: Expr::Identifier(n.clone()),
                    alias: n,
                })
                .collect()
        } else {
            vec![SelectItem::Wildcard(Default::default())]
        };
        let sub_alias = self.fresh("q");
        let outer = parse_select(&format!(
            "SELECT 1 FROM (SELECT 1) AS \"{sub_alias}\" WHERE \"{flag}\""
        ))?;
        let mut outer = outer;
        outer.projection = projection;
        if let Some(twj) = outer.from.first_mut() {
            twj.relation = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(inner),
                alias: Some(TableAlias {
                    explicit: true,
                    name: Ident::with_quote('"', sub_alias),
                    columns: vec![],
                    at: None,
                }),
                sample: None,
            };
        }
        *query.body = SetExpr::Select(Box::new(outer));
        Ok(if explicit { 0 } else { 1 + extra })
    }

    /// Snowflake `LATERAL FLATTEN(input => x)` / `TABLE(FLATTEN(x))` → `json_each(x)`.
    fn table_functions(&mut self, select: &mut Select) -> Result<(), DialectError> {
        for twj in &mut select.from {
            flatten_factor(&mut twj.relation)?;
            for j in &mut twj.joins {
                flatten_factor(&mut j.relation)?;
            }
        }
        Ok(())
    }

    /// Databricks `explode(x)` in the projection and `LATERAL VIEW explode(x) t AS c`;
    /// returns the (alias, column, replacement) substitutions made for ORDER BY.
    fn generators(
        &mut self,
        select: &mut Select,
    ) -> Result<Vec<(String, String, Expr)>, DialectError> {
        let mut made = Vec::new();
        let views = std::mem::take(&mut select.lateral_views);
        for lv in views {
            let Expr::Function(f) = &lv.lateral_view else {
                return Err(DialectError::Unsupported("this LATERAL VIEW".into()));
            };
            let name = fname(f);
            let arg = positional(f)
                .into_iter()
                .next()
                .ok_or_else(|| DialectError::Invalid(format!("{name} needs an argument")))?;
            let alias = lv
                .lateral_view_name
                .0
                .last()
                .map(|p| p.to_string())
                .unwrap_or_else(|| self.fresh("lv"));
            let each = self.fresh("each");
            select.from.push(json_each(arg, &each));
            // LATERAL VIEW columns: a derived name per alias column.
            let cols = lv.lateral_col_alias.clone();
            let mut replace: Vec<(String, Expr)> = Vec::new();
            match (name.as_str(), cols.as_slice()) {
                ("posexplode" | "posexplode_outer", [pos, val]) => {
                    replace.push((pos.value.to_lowercase(), each_col(&each, "key")));
                    replace.push((val.value.to_lowercase(), each_col(&each, "value")));
                }
                (_, [val]) => replace.push((val.value.to_lowercase(), each_col(&each, "value"))),
                (_, []) => replace.push(("col".into(), each_col(&each, "value"))),
                _ => {
                    return Err(DialectError::Unsupported(
                        "this LATERAL VIEW column list".into(),
                    ));
                }
            }
            let alias_l = alias.to_lowercase();
            for (c, r) in &replace {
                made.push((alias_l.clone(), c.clone(), r.clone()));
            }
            let subst = |e: &mut Expr| {
                let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
                    let key = match x {
                        Expr::Identifier(id) => Some(id.value.to_lowercase()),
                        Expr::CompoundIdentifier(p)
                            if p.len() == 2 && p[0].value.to_lowercase() == alias_l =>
                        {
                            Some(p[1].value.to_lowercase())
                        }
                        _ => None,
                    };
                    if let Some(k) = key
                        && let Some((_, r)) = replace.iter().find(|(n, _)| *n == k)
                    {
                        *x = r.clone();
                    }
                    ControlFlow::<()>::Continue(())
                });
            };
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(e) => {
                        let name = match e {
                            Expr::Identifier(id) => Some(id.clone()),
                            Expr::CompoundIdentifier(p) => p.last().cloned(),
                            _ => None,
                        };
                        let before = e.clone();
                        subst(e);
                        if let Some(n) = name
                            && *e != before
                        {
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: n,
                            };
                        }
                    }
                    SelectItem::ExprWithAlias { expr, .. } => subst(expr),
                    _ => {}
                }
            }
            if let Some(w) = &mut select.selection {
                subst(w);
            }
            if let GroupByExpr::Expressions(list, _) = &mut select.group_by {
                for e in list {
                    subst(e);
                }
            }
        }
        // explode(x) [AS c] in the projection (one generator per SELECT, as Spark allows).
        let mut generated = false;
        for i in 0..select.projection.len() {
            let (e, alias) = match &select.projection[i] {
                SelectItem::UnnamedExpr(e) => (e.clone(), None),
                SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
                _ => continue,
            };
            let Expr::Function(f) = &e else { continue };
            let name = fname(f);
            if !matches!(name.as_str(), "explode" | "explode_outer" | "posexplode") {
                continue;
            }
            if generated {
                return Err(DialectError::Unsupported(
                    "more than one generator in a SELECT".into(),
                ));
            }
            generated = true;
            let arg = positional(f)
                .into_iter()
                .next()
                .ok_or_else(|| DialectError::Invalid(format!("{name} needs an argument")))?;
            let each = self.fresh("each");
            select.from.push(json_each(arg, &each));
            if name == "posexplode" {
                select.projection[i] = SelectItem::ExprWithAlias {
                    expr: each_col(&each, "key"),
                    alias: Ident::new("pos"),
                };
                select.projection.insert(
                    i + 1,
                    SelectItem::ExprWithAlias {
                        expr: each_col(&each, "value"),
                        alias: alias.unwrap_or_else(|| Ident::new("col")),
                    },
                );
            } else {
                select.projection[i] = SelectItem::ExprWithAlias {
                    expr: each_col(&each, "value"),
                    alias: alias.unwrap_or_else(|| Ident::new("col")),
                };
            }
        }
        Ok(made)
    }
}

fn each_col(each: &str, col: &str) -> Expr {
    Expr::CompoundIdentifier(vec![Ident::with_quote('"', each), Ident::new(col)])
}

fn json_each(arg: Expr, alias: &str) -> TableWithJoins {
    TableWithJoins {
        relation: TableFactor::Table {
            name: ObjectName::from(vec![Ident::new("json_each")]),
            alias: Some(TableAlias {
                explicit: true,
                name: Ident::with_quote('"', alias),
                columns: vec![],
                at: None,
            }),
            args: Some(TableFunctionArgs {
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
                settings: None,
            }),
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_directives: vec![],
            inheritance: None,
        },
        joins: vec![],
    }
}

fn flatten_factor(factor: &mut TableFactor) -> Result<(), DialectError> {
    let (arg, alias) = match factor {
        TableFactor::Function {
            name, args, alias, ..
        } if is_flatten(name) => {
            let arg = named_arg(args, "input").or_else(|| match args.first() {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Some(e.clone()),
                _ => None,
            });
            (arg, alias.clone())
        }
        // `TABLE(...)` stays refused: only `[LATERAL] FLATTEN(INPUT => ..)` is translated.
        TableFactor::TableFunction { expr, .. } => {
            return Err(DialectError::Unsupported(format!(
                "table function TABLE({expr}); write LATERAL FLATTEN(INPUT => ..)"
            )));
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            flatten_factor(&mut table_with_joins.relation)?;
            for j in &mut table_with_joins.joins {
                flatten_factor(&mut j.relation)?;
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    let arg = arg.ok_or_else(|| DialectError::Invalid("FLATTEN needs INPUT => <expr>".into()))?;
    let alias_name = alias
        .map(|a| a.name.value)
        .unwrap_or_else(|| "FLATTEN".to_string());
    *factor = json_each(arg, &alias_name).relation;
    Ok(())
}

fn parse_select(sql: &str) -> Result<Select, DialectError> {
    let d = sqlparser::dialect::GenericDialect {};
    let mut stmts = sqlparser::parser::Parser::parse_sql(&d, sql)
        .map_err(|e| DialectError::Invalid(e.to_string()))?;
    match stmts.pop() {
        Some(sqlparser::ast::Statement::Query(q)) => match *q.body {
            SetExpr::Select(s) => Ok(*s),
            _ => Err(DialectError::Invalid("internal rewrite".into())),
        },
        _ => Err(DialectError::Invalid("internal rewrite".into())),
    }
}

impl VisitorMut for Translator {
    type Break = DialectError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<DialectError> {
        self.depth += 1;
        // Generators and FLATTEN before the expressions inside them are translated.
        let top = self.depth == 1;
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(e) = self.table_functions(select)
        {
            return ControlFlow::Break(e);
        }
        let mut made = Vec::new();
        if let SetExpr::Select(select) = query.body.as_mut() {
            match self.generators(select) {
                Ok(m) => made = m,
                Err(e) => return ControlFlow::Break(e),
            }
        }
        if !made.is_empty()
            && let Some(order_by) = &mut query.order_by
        {
            let _ = sqlparser::ast::visit_expressions_mut(order_by, |x| {
                if let Expr::CompoundIdentifier(p) = x
                    && p.len() == 2
                    && let Some((_, _, r)) = made.iter().find(|(a, c, _)| {
                        *a == p[0].value.to_lowercase() && *c == p[1].value.to_lowercase()
                    })
                {
                    *x = r.clone();
                }
                ControlFlow::<()>::Continue(())
            });
        }
        // Unnamed computed projection items keep their platform-side name.
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(e) = item
                    && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    let text = e.to_string();
                    let name = match self.platform {
                        Platform::Snowflake => text.to_uppercase(),
                        Platform::Databricks => text,
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
        }
        let _ = top;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<DialectError> {
        let top = self.depth == 1;
        self.depth -= 1;
        match self.restructure(query, top) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DialectError> {
        let types = self.operand_types(expr);
        self.pending.push(Pending { types });
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DialectError> {
        let p = self.pending.pop().unwrap_or(Pending { types: vec![] });
        match self.rewrite(expr, &p.types) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}
