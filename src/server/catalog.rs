//! The server's own catalog statements: `list_tables` (SHOW TABLES on
//! Snowflake, `system.information_schema.tables` with bound parameters on
//! Databricks) and `describe_table` (`DESCRIBE TABLE` on a validated name).
//! Every name in them passed [`crate::sql_ident`]'s validation first.

use crate::query::QueryParameter;
use crate::result::Platform;
use crate::sql_ident;

/// `DESCRIBE TABLE` for a name the model gave, validated and returned with
/// it (the allow-list checks the same validated name).
pub fn describe_table_sql(platform: Platform, table: &str) -> Result<(String, String), String> {
    let name = sql_ident::validate_table_name(platform, table)?;
    Ok((format!("DESCRIBE TABLE {name}"), name))
}

/// The statement `list_tables` runs (filtered by the platform to what the vended role can
/// see) and its parameters.
///
/// Snowflake: `SHOW TABLES IN …` with the validated (plain or double-quoted) names; SHOW
/// takes no bind variables. Databricks: a query of `system.information_schema.tables`
/// whose catalog/schema are bound as Statement Execution API named parameters
/// (`:catalog`, `:schema`), never spliced into the text (security audit F6).
pub fn list_tables_sql(
    platform: Platform,
    database: Option<&str>,
    schema: Option<&str>,
) -> Result<(String, Vec<QueryParameter>), String> {
    let database = database
        .map(|d| sql_ident::validate_identifier(platform, d))
        .transpose()?;
    let schema = schema
        .map(|s| sql_ident::validate_identifier(platform, s))
        .transpose()?;
    if schema.is_some() && database.is_none() {
        return Err(
            "schema needs database (the Snowflake database or Databricks catalog) as well".into(),
        );
    }
    Ok(match platform {
        Platform::Snowflake => (
            match (database, schema) {
                (Some(d), Some(s)) => format!("SHOW TABLES IN SCHEMA {d}.{s}"),
                (Some(d), None) => format!("SHOW TABLES IN DATABASE {d}"),
                _ => "SHOW TABLES IN ACCOUNT".to_string(),
            },
            Vec::new(),
        ),
        Platform::Databricks => {
            let mut sql = "SELECT table_catalog, table_schema, table_name, table_type FROM system.information_schema.tables"
                .to_string();
            let mut parameters = Vec::new();
            if let Some(d) = database {
                sql.push_str(" WHERE table_catalog = :catalog");
                parameters.push(QueryParameter {
                    name: "catalog".into(),
                    value: sql_ident::bare_name(platform, &d),
                });
                if let Some(s) = schema {
                    sql.push_str(" AND table_schema = :schema");
                    parameters.push(QueryParameter {
                        name: "schema".into(),
                        value: sql_ident::bare_name(platform, &s),
                    });
                }
            }
            sql.push_str(" ORDER BY table_catalog, table_schema, table_name");
            (sql, parameters)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_takes_only_a_validated_name() {
        assert_eq!(
            describe_table_sql(Platform::Snowflake, "SALES.PUBLIC.ORDERS").unwrap(),
            (
                "DESCRIBE TABLE SALES.PUBLIC.ORDERS".to_string(),
                "SALES.PUBLIC.ORDERS".to_string()
            )
        );
        assert!(describe_table_sql(Platform::Snowflake, "T; DROP TABLE X").is_err());
        assert!(describe_table_sql(Platform::Databricks, "main.`a``b`.t").is_err());
    }

    #[test]
    fn list_sql_per_platform() {
        let sql = |p, d, s| list_tables_sql(p, d, s).unwrap();
        assert_eq!(
            sql(Platform::Snowflake, None, None),
            ("SHOW TABLES IN ACCOUNT".to_string(), vec![])
        );
        assert_eq!(
            sql(Platform::Snowflake, Some("SALES"), Some("PUBLIC")).0,
            "SHOW TABLES IN SCHEMA SALES.PUBLIC"
        );
        let param = |name: &str, value: &str| QueryParameter {
            name: name.into(),
            value: value.into(),
        };
        let (db, params) = sql(Platform::Databricks, Some("main"), Some("`sales`"));
        assert!(
            db.contains("WHERE table_catalog = :catalog AND table_schema = :schema"),
            "{db}"
        );
        assert!(!db.contains("main") && !db.contains("sales"), "{db}");
        assert_eq!(
            params,
            vec![param("catalog", "main"), param("schema", "sales")]
        );
        assert!(list_tables_sql(Platform::Databricks, None, Some("x")).is_err());
        assert!(list_tables_sql(Platform::Databricks, Some("m' OR '1'='1"), None).is_err());
        // Security audit F6: the back-quoted forms used to be spliced into the literal.
        for injected in [
            "`main' OR '1'='1`",
            "`x' UNION SELECT table_catalog, table_schema, table_name, 'x' FROM system.information_schema.tables --`",
            "`main\\`",
            "`ma\\'in`",
        ] {
            assert!(
                list_tables_sql(Platform::Databricks, Some(injected), None).is_err(),
                "{injected}"
            );
            assert!(
                list_tables_sql(Platform::Databricks, Some("main"), Some(injected)).is_err(),
                "{injected}"
            );
        }
        assert!(sql_ident::validate_table_name(Platform::Snowflake, "\"a'b\".S.T").is_err());
        // Quoted names without those characters still work, bound as their bare text.
        let (_, params) = sql(Platform::Databricks, Some("`my-catalog`"), None);
        assert_eq!(params, vec![param("catalog", "my-catalog")]);
    }
}
