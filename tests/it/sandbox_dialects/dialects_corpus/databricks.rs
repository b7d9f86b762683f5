//! Databricks corpus (main.sales, user bob). Notable semantics exercised:
//! date_trunc returns TIMESTAMP, trunc a DATE; datediff(end, start) counts
//! days and datediff(unit, start, end) whole elapsed units; dayofweek is
//! 1 (Sunday) .. 7; `/` on integers is DOUBLE; CAST to INT truncates;
//! concat_ws skips NULLs; split takes a regular expression; initcap
//! capitalises after white space only; greatest/least skip NULLs;
//! percentile_approx returns an actual value of the input type.

use super::{Case, case};

pub fn databricks_cases() -> Vec<Case> {
    vec![
        // --- dates and times -------------------------------------------------
        case(
            "SELECT date_trunc('MONTH', order_date) AS m, count(*) AS n FROM orders GROUP BY 1",
            "TIMESTAMP|BIGINT",
            r#"[["2024-01-01T00:00:00.000Z","6"]]"#,
        ),
        case(
            "SELECT date_trunc('WEEK', updated_at) AS w FROM orders WHERE order_id = 3",
            "TIMESTAMP",
            r#"[["2024-01-01T00:00:00.000Z"]]"#,
        ),
        case(
            "SELECT trunc(order_date, 'MM') AS m FROM orders WHERE order_id = 4",
            "DATE",
            r#"[["2024-01-01"]]"#,
        ),
        case(
            "SELECT date_add(order_date, 30) AS d, date_sub(order_date, 10) AS s FROM orders WHERE order_id = 1",
            "DATE|DATE",
            r#"[["2024-02-04","2023-12-26"]]"#,
        ),
        case(
            "SELECT add_months(DATE'2024-01-31', 1) AS d",
            "DATE",
            r#"[["2024-02-29"]]"#,
        ),
        case(
            "SELECT datediff(DATE'2024-03-01', DATE'2024-02-01') AS d",
            "INT",
            r#"[["29"]]"#,
        ),
        case(
            "SELECT datediff(MONTH, TIMESTAMP'2021-02-28 12:00:00', TIMESTAMP'2021-03-28 11:59:59') AS a, timestampdiff(MONTH, TIMESTAMP'2021-02-28 12:00:00', TIMESTAMP'2021-03-28 12:00:00') AS b",
            "BIGINT|BIGINT",
            r#"[["0","1"]]"#,
        ),
        case(
            "SELECT datediff(DAY, order_date, DATE'2024-02-01') AS d FROM orders WHERE order_id = 6",
            "BIGINT",
            r#"[["22"]]"#,
        ),
        case(
            "SELECT year(hired_on) AS y, month(hired_on) AS m, dayofmonth(hired_on) AS d FROM hr.employees WHERE employee_id = 2",
            "INT|INT|INT",
            r#"[["2020","8","17"]]"#,
        ),
        case(
            "SELECT extract(YEAR FROM updated_at) AS y, hour(updated_at) AS h FROM orders WHERE order_id = 3",
            "INT|INT",
            r#"[["2024","18"]]"#,
        ),
        case(
            "SELECT dayofweek(order_date) AS dow, weekday(order_date) AS wd, quarter(order_date) AS q FROM orders WHERE order_id = 1",
            "INT|INT|INT",
            r#"[["6","4","1"]]"#,
        ),
        case(
            "SELECT date_format(updated_at, 'yyyy-MM-dd HH:mm') AS s FROM orders WHERE order_id = 2",
            "STRING",
            r#"[["2024-01-06 14:05"]]"#,
        ),
        case(
            "SELECT date_format(order_date, 'MMM d, yyyy') AS s FROM orders WHERE order_id = 4",
            "STRING",
            r#"[["Jan 8, 2024"]]"#,
        ),
        case(
            "SELECT current_date() >= DATE'2024-01-01' AS ok, current_timestamp() > TIMESTAMP'2024-01-01 00:00:00' AS ok2",
            "BOOLEAN|BOOLEAN",
            r#"[["true","true"]]"#,
        ),
        case(
            "SELECT order_id FROM orders WHERE order_date BETWEEN '2024-01-06' AND '2024-01-08' ORDER BY order_id",
            "BIGINT",
            r#"[["2"],["3"],["4"]]"#,
        ),
        case(
            "SELECT CAST(updated_at AS DATE) AS d, to_date('2024-03-15') AS t FROM orders WHERE order_id = 5",
            "DATE|DATE",
            r#"[["2024-01-09","2024-03-15"]]"#,
        ),
        case(
            "SELECT order_date + INTERVAL 7 DAYS AS d FROM orders WHERE order_id = 1",
            "DATE",
            r#"[["2024-01-12"]]"#,
        ),
        case(
            "SELECT employee_id, hired_on FROM hr.employees WHERE year(hired_on) < 2020 ORDER BY hired_on",
            "BIGINT|DATE",
            r#"[["5","2018-10-01"],["1","2019-04-01"]]"#,
        ),
        case(
            "SELECT order_id, updated_at FROM orders WHERE order_id = 5",
            "BIGINT|TIMESTAMP",
            r#"[["5","2024-01-09T11:15:00.500Z"]]"#,
        ),
        // --- casts and arithmetic -----------------------------------------------
        case(
            "SELECT try_cast('abc' AS INT) AS a, CAST('42' AS INT) AS b",
            "INT|INT",
            r#"[[null,"42"]]"#,
        ),
        case(
            "SELECT CAST(2.7 AS INT) AS t, CAST('12.345' AS DECIMAL(10,2)) AS d",
            "INT|DECIMAL(10,2)",
            r#"[["2","12.35"]]"#,
        ),
        case("SELECT 7 / 2 AS q", "DOUBLE", r#"[["3.5"]]"#),
        case(
            "SELECT round(amount) AS r, bround(2.5) AS b FROM orders WHERE order_id = 1",
            "DECIMAL(9,0)|DECIMAL(2,0)",
            r#"[["121","2"]]"#,
        ),
        case(
            "SELECT greatest(1, NULL, 3) AS g, least(5, 2) AS l",
            "INT|INT",
            r#"[["3","2"]]"#,
        ),
        // --- conditionals -----------------------------------------------------
        case(
            "SELECT if(amount > 100, 'big', 'small') AS s FROM orders WHERE order_id IN (1, 2) ORDER BY order_id",
            "STRING",
            r#"[["big"],["small"]]"#,
        ),
        case(
            "SELECT nvl(updated_at, TIMESTAMP'2024-01-01 00:00:00') AS u FROM orders WHERE order_id = 6",
            "TIMESTAMP",
            r#"[["2024-01-01T00:00:00.000Z"]]"#,
        ),
        case(
            "SELECT nvl2(updated_at, 'yes', 'no') AS s FROM orders WHERE order_id IN (5, 6) ORDER BY order_id",
            "STRING",
            r#"[["yes"],["no"]]"#,
        ),
        case(
            "SELECT decode(region, 'EU', 'Europe', 'US', 'America', 'Other') AS r FROM orders WHERE order_id IN (1, 3, 4) ORDER BY order_id",
            "STRING",
            r#"[["Europe"],["America"],["Other"]]"#,
        ),
        case(
            "SELECT zeroifnull(CAST(NULL AS INT)) AS z, coalesce(NULL, 'x') AS c, ifnull(NULL, 2) AS i",
            "INT|STRING|INT",
            r#"[["0","x","2"]]"#,
        ),
        case(
            "SELECT CASE WHEN amount >= 100 THEN 'high' ELSE 'low' END AS tier, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1",
            "STRING|BIGINT",
            r#"[["high","3"],["low","3"]]"#,
        ),
        // --- aggregates -------------------------------------------------------
        case(
            "SELECT median(salary) AS m FROM hr.employees",
            "DOUBLE",
            r#"[["88000"]]"#,
        ),
        case(
            "SELECT region, percentile_approx(amount, 0.5) AS p FROM orders GROUP BY region ORDER BY region",
            "STRING|DECIMAL(10,2)",
            r#"[["APAC","42.10"],["EU","120.50"],["US","15.00"]]"#,
        ),
        case(
            "SELECT percentile(salary, 0.5) AS p, percentile_cont(0.25) WITHIN GROUP (ORDER BY salary) AS q FROM hr.employees",
            "DOUBLE|DOUBLE",
            r#"[["88000","72000"]]"#,
        ),
        case(
            "SELECT count_if(is_gift) AS g, count(*) AS n FROM orders",
            "BIGINT|BIGINT",
            r#"[["2","6"]]"#,
        ),
        case(
            "SELECT region, sort_array(collect_list(order_id)) AS ids FROM orders GROUP BY region ORDER BY region",
            "STRING|ARRAY<BIGINT>",
            r#"[["APAC","[4]"],["EU","[1,2,5]"],["US","[3,6]"]]"#,
        ),
        case(
            "SELECT sort_array(collect_set(region)) AS r FROM orders",
            "ARRAY<STRING>",
            r#"[["[\"APAC\",\"EU\",\"US\"]"]]"#,
        ),
        case(
            "SELECT array_join(sort_array(collect_list(region)), ',') AS r FROM orders WHERE amount > 100",
            "STRING",
            r#"[["EU,EU,US"]]"#,
        ),
        case(
            "SELECT any_value(region) AS r, approx_count_distinct(region) AS n FROM orders WHERE order_id = 3",
            "STRING|BIGINT",
            r#"[["US","1"]]"#,
        ),
        case(
            "SELECT approx_count_distinct(region) AS n FROM orders",
            "BIGINT",
            r#"[["3"]]"#,
        ),
        case(
            "SELECT max_by(order_id, amount) AS top, min_by(order_id, amount) AS low FROM orders",
            "BIGINT|BIGINT",
            r#"[["5","6"]]"#,
        ),
        case(
            "SELECT sum(amount) AS s, avg(amount) AS a FROM orders WHERE region = 'EU'",
            "DECIMAL(20,2)|DECIMAL(14,6)",
            r#"[["521.24","173.746667"]]"#,
        ),
        case(
            "SELECT department, count(*) AS n, round(avg(salary), 0) AS a FROM hr.employees GROUP BY ALL ORDER BY department",
            "STRING|BIGINT|DECIMAL(11,0)",
            r#"[["Engineering","2","116500"],["Finance","1","88000"],["Sales","1","72000"],["Support","1","54000"]]"#,
        ),
        case(
            "SELECT sum(CASE WHEN is_gift THEN amount ELSE 0.00 END) AS gift_total FROM orders",
            "DECIMAL(20,2)",
            r#"[["400.74"]]"#,
        ),
        case(
            "SELECT count(DISTINCT region) AS n, min(order_date) AS first_d, max(updated_at) AS last_t FROM orders",
            "BIGINT|DATE|TIMESTAMP",
            r#"[["3","2024-01-05","2024-01-09T11:15:00.500Z"]]"#,
        ),
        // --- windows, QUALIFY, LIMIT/OFFSET ---------------------------------------
        case(
            "SELECT employee_id, rank() OVER (ORDER BY salary DESC) AS rk FROM hr.employees ORDER BY employee_id",
            "BIGINT|INT",
            r#"[["1","4"],["2","1"],["3","2"],["4","5"],["5","3"]]"#,
        ),
        case(
            "SELECT order_id, sum(amount) OVER (PARTITION BY region ORDER BY order_id) AS running FROM orders WHERE region = 'EU' ORDER BY order_id",
            "BIGINT|DECIMAL(20,2)",
            r#"[["1","120.50"],["2","210.49"],["5","521.24"]]"#,
        ),
        case(
            "SELECT order_id, lead(order_date) OVER (ORDER BY order_id) AS nxt FROM orders WHERE order_id >= 5 ORDER BY order_id",
            "BIGINT|DATE",
            r#"[["5","2024-01-10"],["6",null]]"#,
        ),
        case(
            "SELECT region, order_id, amount FROM orders QUALIFY row_number() OVER (PARTITION BY region ORDER BY amount DESC) = 1 ORDER BY region",
            "STRING|BIGINT|DECIMAL(10,2)",
            r#"[["APAC","4","42.10"],["EU","5","310.75"],["US","3","250.00"]]"#,
        ),
        case(
            "SELECT department, full_name, dense_rank() OVER (PARTITION BY department ORDER BY salary DESC) AS dr FROM hr.employees QUALIFY dr = 1 ORDER BY department",
            "STRING|STRING|INT",
            r#"[["Engineering","Tom Baker","1"],["Finance","Nina Kowalski","1"],["Sales","Eva Becker","1"],["Support","Hiro Sato","1"]]"#,
        ),
        case(
            "SELECT order_id FROM orders ORDER BY order_id LIMIT 2 OFFSET 2",
            "BIGINT",
            r#"[["3"],["4"]]"#,
        ),
        // --- strings ------------------------------------------------------------
        case(
            "SELECT split_part(customer_email, '@', 2) AS d FROM orders WHERE order_id = 3",
            "STRING",
            r#"[["example.com"]]"#,
        ),
        case(
            "SELECT split('a1b22c', '[0-9]+') AS parts",
            "ARRAY<STRING>",
            r#"[["[\"a\",\"b\",\"c\"]"]]"#,
        ),
        case(
            "SELECT split(customer_email, '@')[0] AS user FROM orders WHERE order_id = 2",
            "STRING",
            r#"[["luca.rossi"]]"#,
        ),
        case(
            "SELECT count(*) AS n FROM orders WHERE customer_email ILIKE '%EXAMPLE.COM'",
            "BIGINT",
            r#"[["2"]]"#,
        ),
        case(
            "SELECT count(*) AS n FROM orders WHERE customer_email LIKE '%EXAMPLE.COM'",
            "BIGINT",
            r#"[["0"]]"#,
        ),
        case(
            "SELECT count(*) AS n FROM orders WHERE customer_email RLIKE '[.](de|it)$'",
            "BIGINT",
            r#"[["2"]]"#,
        ),
        case(
            "SELECT regexp_extract(customer_email, '^([a-z]+)[.]', 1) AS first_name FROM orders WHERE order_id = 4",
            "STRING",
            r#"[["kenji"]]"#,
        ),
        case(
            "SELECT regexp_replace(customer_email, '@.*', '') AS u FROM orders WHERE order_id = 5",
            "STRING",
            r#"[["claire.martin"]]"#,
        ),
        case(
            "SELECT concat_ws('-', region, NULL, 'x') AS s FROM orders WHERE order_id = 1",
            "STRING",
            r#"[["EU-x"]]"#,
        ),
        case(
            "SELECT initcap('hello wORLD-foo') AS s",
            "STRING",
            r#"[["Hello World-foo"]]"#,
        ),
        case(
            "SELECT concat(region, '-', order_id) AS s, concat('a', NULL) AS n FROM orders WHERE order_id = 1",
            "STRING|STRING",
            r#"[["EU-1",null]]"#,
        ),
        case(
            "SELECT upper(region) AS u, length(customer_email) AS l, lpad(CAST(order_id AS STRING), 4, '0') AS p FROM orders WHERE order_id = 1",
            "STRING|INT|STRING",
            r#"[["EU","23","0001"]]"#,
        ),
        case(
            "SELECT instr(customer_email, '@') AS i, left(customer_email, 4) AS l FROM orders WHERE order_id = 1",
            "INT|STRING",
            r#"[["13","anna"]]"#,
        ),
        // --- semi-structured ------------------------------------------------------
        case(
            "SELECT order_id, details.channel AS channel FROM orders WHERE order_id <= 3 ORDER BY order_id",
            "BIGINT|STRING",
            r#"[["1","web"],["2","store"],["3","web"]]"#,
        ),
        case(
            "SELECT details.attrs['source'] AS src FROM orders WHERE order_id = 3",
            "STRING",
            r#"[["ads"]]"#,
        ),
        case(
            "SELECT details.tags[0] AS first_tag, size(details.tags) AS n FROM orders WHERE order_id = 5",
            "STRING|INT",
            r#"[["gift","2"]]"#,
        ),
        case(
            "SELECT order_id, explode(details.tags) AS tag FROM orders WHERE region = 'EU' ORDER BY order_id, tag",
            "BIGINT|STRING",
            r#"[["1","new"],["1","promo"],["2","gift"],["5","gift"],["5","vip"]]"#,
        ),
        case(
            "SELECT t.tag, count(*) AS n FROM orders LATERAL VIEW explode(details.tags) t AS tag GROUP BY t.tag ORDER BY n DESC, t.tag",
            "STRING|BIGINT",
            r#"[["gift","2"],["promo","2"],["new","1"],["vip","1"]]"#,
        ),
        case(
            "SELECT named_struct('a', 1, 'b', 'x') AS s, array(1, 2, 3) AS a, map('k', 'v') AS m",
            "STRUCT<a: INT, b: STRING>|ARRAY<INT>|MAP<STRING, STRING>",
            r#"[["{\"a\":1,\"b\":\"x\"}","[1,2,3]","{\"k\":\"v\"}"]]"#,
        ),
        case(
            "SELECT element_at(array(10, 20, 30), 2) AS e, array_contains(details.tags, 'vip') AS v FROM orders WHERE order_id = 5",
            "INT|BOOLEAN",
            r#"[["20","true"]]"#,
        ),
        case(
            r#"SELECT get_json_object('{"a":{"b":7}}', '$.a.b') AS v"#,
            "STRING",
            r#"[["7"]]"#,
        ),
        case(
            "SELECT order_id FROM orders WHERE details.channel = 'web' AND array_contains(details.tags, 'promo') ORDER BY order_id",
            "BIGINT",
            r#"[["1"],["3"]]"#,
        ),
        // --- joins and CTEs -----------------------------------------------------------
        case(
            "SELECT c.region, count(*) AS n, sum(e.salary) AS payroll FROM hr.employees e JOIN orders c ON c.region = e.region WHERE c.order_id = 1 GROUP BY c.region",
            "STRING|BIGINT|DECIMAL(22,2)",
            r#"[["EU","3","258000.00"]]"#,
        ),
        case(
            "WITH d AS (SELECT order_date, amount FROM orders WHERE amount IS NOT NULL) SELECT date_format(order_date, 'yyyy-MM') AS ym, sum(amount) AS total FROM d GROUP BY 1",
            "STRING|DECIMAL(20,2)",
            r#"[["2024-01","828.34"]]"#,
        ),
        case(
            "SELECT full_name FROM hr.employees WHERE department IN ('Sales', 'Finance') AND is_manager ORDER BY full_name",
            "STRING",
            r#"[["Eva Becker"],["Nina Kowalski"]]"#,
        ),
        // --- more analyst idioms ----------------------------------------------------
        case(
            "SELECT * EXCEPT (customer_email, details) FROM orders WHERE order_id = 1",
            "BIGINT|STRING|DECIMAL(10,2)|DATE|TIMESTAMP|BOOLEAN|DOUBLE",
            r#"[["1","EU","120.50","2024-01-05","2024-01-05T09:20:00.000Z","false","0"]]"#,
        ),
        case(
            "SELECT make_date(2024, 2, 29) AS d, format_number(1234567.891, 2) AS f, from_unixtime(0) AS t",
            "DATE|STRING|STRING",
            r#"[["2024-02-29","1,234,567.89","1970-01-01 00:00:00"]]"#,
        ),
        case(
            "SELECT count(*) AS n FROM orders WHERE updated_at <= '2024-01-05 09:20:00'",
            "BIGINT",
            r#"[["1"]]"#,
        ),
        case(
            "SELECT mode(region) AS m FROM orders",
            "STRING",
            r#"[["EU"]]"#,
        ),
        case(
            "SELECT current_date() - INTERVAL 7 DAYS < current_date() AS ok",
            "BOOLEAN",
            r#"[["true"]]"#,
        ),
        case(
            "SELECT region FROM orders UNION SELECT region FROM hr.employees ORDER BY 1",
            "STRING",
            r#"[["APAC"],["EU"],["US"]]"#,
        ),
        case(
            "SELECT struct(order_id, region) AS s, details.CHANNEL AS c, map_keys(details.attrs) AS k FROM orders WHERE order_id = 3",
            "STRUCT<order_id: BIGINT, region: STRING>|STRING|ARRAY<STRING>",
            r#"[["{\"order_id\":3,\"region\":\"US\"}","web","[\"campaign\",\"source\"]"]]"#,
        ),
        case(
            "SELECT order_id, pos, tag FROM orders LATERAL VIEW posexplode(details.tags) t AS pos, tag WHERE order_id = 5 ORDER BY pos",
            "BIGINT|INT|STRING",
            r#"[["5","0","gift"],["5","1","vip"]]"#,
        ),
        case(
            "SELECT CAST(updated_at AS STRING) AS s, CAST(order_date AS STRING) AS d FROM orders WHERE order_id = 5",
            "STRING|STRING",
            r#"[["2024-01-09 11:15:00.5","2024-01-09"]]"#,
        ),
        case(
            "SELECT substring_index('www.apache.org', '.', 2) AS a, substring_index(customer_email, '@', -1) AS d, sha2('abc', 256) AS h FROM orders WHERE order_id = 2",
            "STRING|STRING|STRING",
            r#"[["www.apache","example.it","ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]]"#,
        ),
        case(
            "SELECT amount * order_id AS weighted, weighted + amount AS plus FROM orders WHERE order_id = 6",
            "DECIMAL(31,2)|DECIMAL(32,2)",
            r#"[["90.00","105.00"]]"#,
        ),
    ]
}
