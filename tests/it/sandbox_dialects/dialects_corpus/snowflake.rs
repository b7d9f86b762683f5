//! Snowflake corpus (SALES.PUBLIC, user bob). Notable semantics exercised:
//! DATEDIFF counts boundaries; `/` on numbers keeps decimals (scale
//! max(s1, min(s1 + 6, 12))); MEDIAN of NUMBER(p,s) is NUMBER(p+3, s+3);
//! COUNT is NUMBER(18,0); CONCAT_WS is NULL if any argument is; LIKE is
//! case-sensitive; DAYOFWEEK is 0 (Sunday) .. 6; DATE_TRUNC('week') → Monday.

use super::{Case, case};

pub fn snowflake_cases() -> Vec<Case> {
    vec![
        // --- dates and times -------------------------------------------------
        case(
            "SELECT DATE_TRUNC('month', ORDERED_AT) AS m, COUNT(*) AS n FROM ORDERS GROUP BY 1 ORDER BY 1",
            "timestamp_ntz|fixed(18,0)",
            r#"[["2024-01-01 00:00:00","8"]]"#,
        ),
        case(
            "SELECT DATE_TRUNC('week', SIGNUP_DATE) AS w FROM CUSTOMERS WHERE CUSTOMER_ID = 105",
            "date",
            r#"[["2023-05-29"]]"#,
        ),
        case(
            "SELECT DATE_TRUNC(quarter, SIGNUP_DATE) AS q, COUNT(*) AS n FROM CUSTOMERS GROUP BY q ORDER BY q",
            "date|fixed(18,0)",
            r#"[["2021-10-01","1"],["2022-01-01","1"],["2022-07-01","2"],["2023-01-01","1"],["2023-04-01","1"],["2024-01-01","1"]]"#,
        ),
        case(
            "SELECT DATEADD(day, 30, SIGNUP_DATE) AS d FROM CUSTOMERS WHERE CUSTOMER_ID = 104",
            "date",
            r#"[["2021-12-05"]]"#,
        ),
        case(
            "SELECT DATEADD(month, 1, '2024-01-31'::DATE) AS d",
            "date",
            r#"[["2024-02-29"]]"#,
        ),
        case(
            "SELECT DATEADD(hour, 5, ORDERED_AT) AS t FROM ORDERS WHERE ORDER_ID = 1004",
            "timestamp_ntz",
            r#"[["2024-01-08 08:20:00"]]"#,
        ),
        case(
            "SELECT DATEDIFF(day, '2024-01-01 23:59:00'::TIMESTAMP, '2024-01-02 00:01:00'::TIMESTAMP) AS d",
            "fixed(*,0)",
            r#"[["1"]]"#,
        ),
        case(
            "SELECT DATEDIFF(month, '2024-01-31'::DATE, '2024-02-01'::DATE) AS m",
            "fixed(*,0)",
            r#"[["1"]]"#,
        ),
        case(
            "SELECT CUSTOMER_ID, DATEDIFF(year, SIGNUP_DATE, '2024-06-30'::DATE) AS yrs FROM CUSTOMERS ORDER BY CUSTOMER_ID LIMIT 3",
            "fixed(38,0)|fixed(*,0)",
            r#"[["101","2"],["102","2"],["103","1"]]"#,
        ),
        case(
            "SELECT YEAR(SIGNUP_DATE) AS y, MONTH(SIGNUP_DATE) AS m, DAY(SIGNUP_DATE) AS d FROM CUSTOMERS WHERE CUSTOMER_ID = 105",
            "fixed(*,0)|fixed(*,0)|fixed(*,0)",
            r#"[["2023","5","30"]]"#,
        ),
        case(
            "SELECT EXTRACT(year FROM ORDERED_AT) AS y, EXTRACT(hour FROM ORDERED_AT) AS h FROM ORDERS WHERE ORDER_ID = 1003",
            "fixed(*,0)|fixed(*,0)",
            r#"[["2024","18"]]"#,
        ),
        case(
            "SELECT DAYOFWEEK(ORDERED_AT) AS dow, QUARTER(ORDERED_AT) AS q FROM ORDERS WHERE ORDER_ID = 1001",
            "fixed(*,0)|fixed(*,0)",
            r#"[["5","1"]]"#,
        ),
        case(
            "SELECT TO_CHAR(ORDERED_AT, 'YYYY-MM-DD HH24:MI') AS s FROM ORDERS WHERE ORDER_ID = 1002",
            "text",
            r#"[["2024-01-06 14:02"]]"#,
        ),
        case(
            "SELECT TO_VARCHAR(SIGNUP_DATE, 'MON DD, YYYY') AS s FROM CUSTOMERS WHERE CUSTOMER_ID = 106",
            "text",
            r#"[["Sep 12, 2022"]]"#,
        ),
        case(
            "SELECT CURRENT_DATE() >= '2024-01-01'::DATE AS ok, DATEDIFF(day, DATE '2024-01-01', CURRENT_DATE()) > 0 AS later",
            "boolean|boolean",
            r#"[["true","true"]]"#,
        ),
        case(
            "SELECT DATE '2024-03-01' - 1 AS d",
            "date",
            r#"[["2024-02-29"]]"#,
        ),
        case(
            "SELECT '2024-02-01'::DATE - '2024-01-01'::DATE AS days",
            "fixed(*,0)",
            r#"[["31"]]"#,
        ),
        case(
            "SELECT LAST_DAY(SIGNUP_DATE) AS l FROM CUSTOMERS WHERE CUSTOMER_ID = 107",
            "date",
            r#"[["2024-02-29"]]"#,
        ),
        case(
            "SELECT TO_DATE('2024-03-15') AS d, TO_TIMESTAMP('2024-03-15 10:30:00') AS t",
            "date|timestamp_ntz",
            r#"[["2024-03-15","2024-03-15 10:30:00"]]"#,
        ),
        case(
            "SELECT CUSTOMER_ID FROM CUSTOMERS WHERE SIGNUP_DATE >= DATE '2023-01-01' ORDER BY 1",
            "fixed(38,0)",
            r#"[["103"],["105"],["107"]]"#,
        ),
        case(
            "SELECT COUNT(*) AS n FROM ORDERS WHERE ORDERED_AT BETWEEN '2024-01-06'::TIMESTAMP AND '2024-01-09 23:59:59'::TIMESTAMP",
            "fixed(18,0)",
            r#"[["4"]]"#,
        ),
        case(
            "SELECT ORDER_ID, ORDERED_AT::DATE AS d FROM ORDERS WHERE ORDER_ID = 1005",
            "fixed(38,0)|date",
            r#"[["1005","2024-01-09"]]"#,
        ),
        // --- casts -----------------------------------------------------------
        case(
            "SELECT TRY_CAST('abc' AS INTEGER) AS a, TRY_CAST('42' AS INTEGER) AS b",
            "fixed(38,0)|fixed(38,0)",
            r#"[[null,"42"]]"#,
        ),
        case(
            "SELECT '12.345'::NUMBER(10,2) AS n, 2.5::INT AS r",
            "fixed(10,2)|fixed(38,0)",
            r#"[["12.35","3"]]"#,
        ),
        case(
            "SELECT CUSTOMER_ID, IS_ACTIVE::VARCHAR AS a FROM CUSTOMERS WHERE CUSTOMER_ID = 103",
            "fixed(38,0)|text",
            r#"[["103","false"]]"#,
        ),
        // --- arithmetic --------------------------------------------------------
        case(
            "SELECT 7/2 AS q, 1/3 AS r",
            "fixed(38,6)|fixed(38,6)",
            r#"[["3.500000","0.333333"]]"#,
        ),
        case(
            "SELECT AMOUNT / 2 AS half FROM ORDERS WHERE ORDER_ID = 1001",
            "fixed(38,8)",
            r#"[["60.25000000"]]"#,
        ),
        case(
            "SELECT DIV0(AMOUNT, 0) AS d, ROUND(AMOUNT, 1) AS r FROM ORDERS WHERE ORDER_ID = 1002",
            "fixed(38,8)|fixed(10,1)",
            r#"[["0.00000000","90.0"]]"#,
        ),
        // --- conditionals -----------------------------------------------------
        case(
            "SELECT IFF(AMOUNT > 100, 'big', 'small') AS size FROM ORDERS WHERE ORDER_ID IN (1001, 1002) ORDER BY ORDER_ID",
            "text",
            r#"[["big"],["small"]]"#,
        ),
        case(
            "SELECT NVL(AMOUNT, 0) AS a, ZEROIFNULL(AMOUNT) AS z FROM ORDERS WHERE ORDER_ID = 1008",
            "fixed(*,2)|fixed(*,2)",
            r#"[["0.00","0.00"]]"#,
        ),
        case(
            "SELECT NVL2(IS_ACTIVE, 'known', 'unknown') AS k FROM CUSTOMERS WHERE CUSTOMER_ID IN (106, 107) ORDER BY CUSTOMER_ID",
            "text",
            r#"[["known"],["unknown"]]"#,
        ),
        case(
            "SELECT DECODE(REGION, 'EU', 'Europe', 'US', 'America', 'Other') AS r FROM CUSTOMERS WHERE CUSTOMER_ID IN (101, 104, 106) ORDER BY CUSTOMER_ID",
            "text",
            r#"[["Europe"],["America"],["Other"]]"#,
        ),
        case(
            "SELECT DECODE(IS_ACTIVE, NULL, 'n/a', TRUE, 'yes', 'no') AS a FROM CUSTOMERS ORDER BY CUSTOMER_ID DESC LIMIT 2",
            "text",
            r#"[["n/a"],["yes"]]"#,
        ),
        case(
            "SELECT CASE WHEN AMOUNT >= 100 THEN 'high' WHEN AMOUNT >= 50 THEN 'mid' ELSE 'low' END AS tier, COUNT(*) AS n FROM ORDERS GROUP BY tier ORDER BY tier",
            "text|fixed(18,0)",
            r#"[["high","3"],["low","3"],["mid","2"]]"#,
        ),
        case(
            "SELECT COALESCE(NULL, REGION) AS r, NULLIF(REGION, 'EU') AS n FROM CUSTOMERS WHERE CUSTOMER_ID = 101",
            "text|text",
            r#"[["EU",null]]"#,
        ),
        // --- aggregates -------------------------------------------------------
        case(
            "SELECT MEDIAN(AMOUNT) AS med FROM ORDERS",
            "fixed(13,5)",
            r#"[["89.99000"]]"#,
        ),
        case(
            "SELECT REGION, MEDIAN(AMOUNT) AS med FROM ORDERS GROUP BY REGION ORDER BY REGION",
            "text|fixed(13,5)",
            r#"[["APAC","42.10000"],["EU","105.24500"],["US","132.50000"]]"#,
        ),
        case(
            "SELECT COUNT_IF(STATUS = 'PENDING') AS p, COUNT(*) AS n FROM ORDERS",
            "fixed(18,0)|fixed(18,0)",
            r#"[["3","8"]]"#,
        ),
        case(
            "SELECT REGION, LISTAGG(STATUS, ',') WITHIN GROUP (ORDER BY ORDER_ID) AS s FROM ORDERS GROUP BY REGION ORDER BY REGION",
            "text|text",
            r#"[["APAC","PENDING,PENDING"],["EU","SHIPPED,SHIPPED,CANCELLED,PENDING"],["US","DELIVERED,SHIPPED"]]"#,
        ),
        case(
            "SELECT LISTAGG(DISTINCT REGION, '|') WITHIN GROUP (ORDER BY REGION) AS r FROM ORDERS",
            "text",
            r#"[["APAC|EU|US"]]"#,
        ),
        case(
            "SELECT ARRAY_AGG(ORDER_ID) WITHIN GROUP (ORDER BY ORDER_ID) AS ids FROM ORDERS WHERE REGION = 'US'",
            "array",
            r#"[["[1003,1006]"]]"#,
        ),
        case(
            "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY AMOUNT) AS p FROM ORDERS WHERE REGION = 'EU'",
            "fixed(13,5)",
            r#"[["105.24500"]]"#,
        ),
        case(
            "SELECT ANY_VALUE(REGION) AS r, COUNT(*) AS n FROM ORDERS WHERE CUSTOMER_ID = 101",
            "text|fixed(18,0)",
            r#"[["EU","2"]]"#,
        ),
        case(
            "SELECT APPROX_COUNT_DISTINCT(CUSTOMER_ID) AS n FROM ORDERS",
            "fixed(18,0)",
            r#"[["7"]]"#,
        ),
        case(
            "SELECT COUNT(DISTINCT REGION) AS n, MIN(SIGNUP_DATE) AS first_signup, MAX(SIGNUP_DATE) AS last_signup FROM CUSTOMERS",
            "fixed(18,0)|date|date",
            r#"[["3","2021-11-05","2024-02-02"]]"#,
        ),
        case(
            "SELECT AVG(AMOUNT) AS a, SUM(AMOUNT) AS s FROM ORDERS WHERE REGION = 'US'",
            "fixed(38,8)|fixed(38,2)",
            r#"[["132.50000000","265.00"]]"#,
        ),
        case(
            "SELECT c.NAME, SUM(o.AMOUNT) AS total FROM CUSTOMERS c JOIN ORDERS o ON o.CUSTOMER_ID = c.CUSTOMER_ID GROUP BY c.NAME ORDER BY total DESC NULLS LAST LIMIT 2",
            "text|fixed(38,2)",
            r#"[["Claire Martin","310.75"],["James Carter","250.00"]]"#,
        ),
        case(
            "SELECT REGION, STATUS, COUNT(*) AS n FROM ORDERS GROUP BY ALL ORDER BY REGION, STATUS",
            "text|text|fixed(18,0)",
            r#"[["APAC","PENDING","2"],["EU","CANCELLED","1"],["EU","PENDING","1"],["EU","SHIPPED","2"],["US","DELIVERED","1"],["US","SHIPPED","1"]]"#,
        ),
        // --- windows, QUALIFY, TOP, LIMIT/OFFSET --------------------------------
        case(
            "SELECT ORDER_ID, ROW_NUMBER() OVER (PARTITION BY REGION ORDER BY AMOUNT DESC) AS rn FROM ORDERS WHERE REGION = 'EU' ORDER BY ORDER_ID",
            "fixed(38,0)|fixed(*,0)",
            r#"[["1001","2"],["1002","3"],["1005","1"],["1007","4"]]"#,
        ),
        case(
            "SELECT ORDER_ID, SUM(AMOUNT) OVER (ORDER BY ORDER_ID ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM ORDERS WHERE REGION = 'US' ORDER BY ORDER_ID",
            "fixed(38,0)|fixed(38,2)",
            r#"[["1003","250.00"],["1006","265.00"]]"#,
        ),
        case(
            "SELECT LAG(AMOUNT) OVER (ORDER BY ORDER_ID) AS prev FROM ORDERS WHERE REGION = 'US' ORDER BY ORDER_ID",
            "fixed(10,2)",
            r#"[[null],["250.00"]]"#,
        ),
        case(
            "SELECT CUSTOMER_ID, ORDER_ID FROM ORDERS QUALIFY ROW_NUMBER() OVER (PARTITION BY CUSTOMER_ID ORDER BY ORDERED_AT DESC) = 1 ORDER BY CUSTOMER_ID",
            "fixed(38,0)|fixed(38,0)",
            r#"[["101","1007"],["102","1002"],["103","1005"],["104","1003"],["105","1006"],["106","1004"],["107","1008"]]"#,
        ),
        case(
            "SELECT REGION, ORDER_ID, RANK() OVER (PARTITION BY REGION ORDER BY AMOUNT DESC NULLS LAST) AS rk FROM ORDERS QUALIFY rk = 1 ORDER BY REGION",
            "text|fixed(38,0)|fixed(*,0)",
            r#"[["APAC","1004","1"],["EU","1005","1"],["US","1003","1"]]"#,
        ),
        case(
            "SELECT * FROM ORDERS QUALIFY ROW_NUMBER() OVER (ORDER BY AMOUNT DESC NULLS LAST) = 1",
            "fixed(38,0)|fixed(38,0)|text|text|fixed(10,2)|timestamp_ntz|text|variant",
            r#"[["1005","103","EU","claire.martin@example.fr","310.75","2024-01-09 11:11:11.250","CANCELLED","{\"channel\":\"web\",\"items\":[{\"qty\":3,\"sku\":\"B-200\"},{\"qty\":1,\"sku\":\"C-300\"}]}"]]"#,
        ),
        case(
            "SELECT TOP 2 ORDER_ID FROM ORDERS ORDER BY AMOUNT DESC NULLS LAST",
            "fixed(38,0)",
            r#"[["1005"],["1003"]]"#,
        ),
        case(
            "SELECT ORDER_ID FROM ORDERS ORDER BY ORDER_ID LIMIT 2 OFFSET 3",
            "fixed(38,0)",
            r#"[["1004"],["1005"]]"#,
        ),
        // --- strings ------------------------------------------------------------
        case(
            "SELECT SPLIT_PART(EMAIL, '@', 2) AS domain FROM CUSTOMERS WHERE CUSTOMER_ID = 101",
            "text",
            r#"[["example.de"]]"#,
        ),
        case(
            "SELECT SPLIT_PART('a-b-c', '-', -1) AS last, SPLIT_PART('a-b-c', '-', 0) AS first, SPLIT_PART('a-b-c', '-', 5) AS none",
            "text|text|text",
            r#"[["c","a",""]]"#,
        ),
        case(
            "SELECT NAME FROM CUSTOMERS WHERE NAME ILIKE '%SCHMIDT%'",
            "text",
            r#"[["Anna Schmidt"]]"#,
        ),
        case(
            "SELECT COUNT(*) AS n FROM CUSTOMERS WHERE NAME LIKE '%schmidt%'",
            "fixed(18,0)",
            r#"[["0"]]"#,
        ),
        case(
            r"SELECT REGEXP_SUBSTR(EMAIL, '@([a-z]+)\\.', 1, 1, 'e', 1) AS host FROM CUSTOMERS WHERE CUSTOMER_ID = 102",
            "text",
            r#"[["example"]]"#,
        ),
        case(
            "SELECT REGEXP_REPLACE(NAME, '[aeiou]', '') AS n FROM CUSTOMERS WHERE CUSTOMER_ID = 104",
            "text",
            r#"[["Jms Crtr"]]"#,
        ),
        case(
            r"SELECT COUNT(*) AS n FROM CUSTOMERS WHERE REGEXP_LIKE(EMAIL, '.*\\.(de|fr)')",
            "fixed(18,0)",
            r#"[["2"]]"#,
        ),
        case(
            "SELECT CONCAT_WS(' / ', REGION, NAME) AS s, CONCAT_WS('-', 'a', NULL, 'b') AS n FROM CUSTOMERS WHERE CUSTOMER_ID = 106",
            "text|text",
            r#"[["APAC / Kenji Tanaka",null]]"#,
        ),
        case(
            "SELECT INITCAP('hello wORLD-foo') AS s, CONCAT('a', NULL) AS n, 'x' || 'y' AS c",
            "text|text|text",
            r#"[["Hello World-Foo",null,"xy"]]"#,
        ),
        case(
            "SELECT UPPER(LEFT(NAME, 3)) AS s, LENGTH(NAME) AS l, CONTAINS(NAME, 'Mart') AS c FROM CUSTOMERS WHERE CUSTOMER_ID = 103",
            "text|fixed(*,0)|boolean",
            r#"[["CLA","13","true"]]"#,
        ),
        case(
            "SELECT LPAD(CUSTOMER_ID::VARCHAR, 6, '0') AS p, TRIM('  x  ') AS t, REPLACE(REGION, 'E', 'e') AS r FROM CUSTOMERS WHERE CUSTOMER_ID = 101",
            "text|text|text",
            r#"[["000101","x","eU"]]"#,
        ),
        // --- semi-structured ------------------------------------------------------
        case(
            "SELECT ORDER_ID, DETAILS:channel::string AS channel FROM ORDERS WHERE ORDER_ID <= 1003 ORDER BY ORDER_ID",
            "fixed(38,0)|text",
            r#"[["1001","web"],["1002","store"],["1003","web"]]"#,
        ),
        case(
            "SELECT DETAILS:items[0].sku::string AS sku, DETAILS:items[0].qty::int AS qty FROM ORDERS WHERE ORDER_ID = 1001",
            "text|fixed(38,0)",
            r#"[["A-100","2"]]"#,
        ),
        case(
            "SELECT DETAILS:coupon AS c, DETAILS['channel'] AS ch FROM ORDERS WHERE ORDER_ID = 1003",
            "variant|variant",
            r#"[["\"NEWYEAR\"","\"web\""]]"#,
        ),
        case(
            "SELECT COUNT(*) AS n FROM ORDERS WHERE DETAILS:gift::boolean",
            "fixed(18,0)",
            r#"[["2"]]"#,
        ),
        case(
            "SELECT o.ORDER_ID, f.value:sku::string AS sku, f.value:qty::int AS qty FROM ORDERS o, LATERAL FLATTEN(input => o.DETAILS:items) f WHERE o.REGION = 'EU' ORDER BY o.ORDER_ID, f.index",
            "fixed(38,0)|text|fixed(38,0)",
            r#"[["1001","A-100","2"],["1001","B-200","1"],["1002","A-100","1"],["1005","B-200","3"],["1005","C-300","1"],["1007","D-400","2"]]"#,
        ),
        case(
            "SELECT f.value:sku::string AS sku, SUM(f.value:qty::int) AS units FROM ORDERS o, LATERAL FLATTEN(input => o.DETAILS:items) f GROUP BY 1 ORDER BY 1",
            "text|fixed(38,0)",
            r#"[["A-100","4"],["B-200","4"],["C-300","6"],["D-400","2"]]"#,
        ),
        case(
            r#"SELECT PARSE_JSON('{"a":{"b":[10,20]}}'):a.b[1]::int AS v"#,
            "fixed(38,0)",
            r#"[["20"]]"#,
        ),
        case(
            "SELECT OBJECT_CONSTRUCT('k', 1, 'n', NULL) AS o, ARRAY_CONSTRUCT(1, 'two') AS a",
            "object|array",
            r#"[["{\"k\":1}","[1,\"two\"]"]]"#,
        ),
        case(
            "SELECT ARRAY_SIZE(DETAILS:items) AS n FROM ORDERS WHERE ORDER_ID = 1005",
            "fixed(*,0)",
            r#"[["2"]]"#,
        ),
        case(
            "SELECT DETAILS:channel::string AS channel, COUNT(*) AS n FROM ORDERS WHERE DETAILS IS NOT NULL GROUP BY 1 ORDER BY n DESC, channel",
            "text|fixed(18,0)",
            r#"[["web","3"],["app","2"],["store","2"]]"#,
        ),
        // --- CTEs and subqueries ----------------------------------------------------
        case(
            "WITH m AS (SELECT DATE_TRUNC('day', ORDERED_AT) AS d, SUM(AMOUNT) AS total FROM ORDERS GROUP BY 1) SELECT d, total FROM m WHERE total > 100 ORDER BY d",
            "timestamp_ntz|fixed(38,2)",
            r#"[["2024-01-05 00:00:00","120.50"],["2024-01-07 00:00:00","250.00"],["2024-01-09 00:00:00","310.75"]]"#,
        ),
        case(
            "SELECT NAME FROM CUSTOMERS WHERE CUSTOMER_ID IN (SELECT CUSTOMER_ID FROM ORDERS WHERE STATUS = 'PENDING') ORDER BY NAME",
            "text",
            r#"[["Anna Schmidt"],["Kenji Tanaka"],["Priya Nair"]]"#,
        ),
        // --- more analyst idioms ----------------------------------------------------
        case(
            "SELECT * EXCLUDE (EMAIL, DETAILS) FROM ORDERS WHERE ORDER_ID = 1001",
            "fixed(38,0)|fixed(38,0)|text|fixed(10,2)|timestamp_ntz|text",
            r#"[["1001","101","EU","120.50","2024-01-05 09:15:00","SHIPPED"]]"#,
        ),
        case(
            "SELECT COUNT(*) AS n FROM ORDERS WHERE DATE_TRUNC('day', ORDERED_AT) = '2024-01-05'",
            "fixed(18,0)",
            r#"[["1"]]"#,
        ),
        case(
            "SELECT DATE_FROM_PARTS(2024, 2, 30) AS d, MODE(REGION) AS m FROM ORDERS",
            "date|text",
            r#"[["2024-03-01","EU"]]"#,
        ),
        case(
            "SELECT DATEADD(DAY, -7, CURRENT_DATE) < CURRENT_DATE AS ok",
            "boolean",
            r#"[["true"]]"#,
        ),
        case(
            "SELECT REGION FROM CUSTOMERS UNION SELECT REGION FROM ORDERS ORDER BY 1",
            "text",
            r#"[["APAC"],["EU"],["US"]]"#,
        ),
        case(
            "SELECT REGION, COUNT(*) AS n FROM CUSTOMERS GROUP BY REGION HAVING COUNT(*) > 2",
            "text|fixed(18,0)",
            r#"[["EU","3"]]"#,
        ),
        case(
            "SELECT IFF(IS_ACTIVE, 'active', 'inactive') AS s, COUNT(*) AS n FROM CUSTOMERS WHERE IS_ACTIVE IS NOT NULL GROUP BY 1 ORDER BY 1",
            "text|fixed(18,0)",
            r#"[["active","5"],["inactive","1"]]"#,
        ),
        case(
            "SELECT NTILE(2) OVER (ORDER BY CUSTOMER_ID) AS b FROM CUSTOMERS ORDER BY CUSTOMER_ID LIMIT 4",
            "fixed(*,0)",
            r#"[["1"],["1"],["1"],["1"]]"#,
        ),
        case(
            "SELECT COUNT(*) AS n FROM ORDERS WHERE STATUS ILIKE ANY ('ship%', 'pend%')",
            "fixed(18,0)",
            r#"[["6"]]"#,
        ),
        case(
            "SELECT ORDER_ID FROM ORDERS WHERE ORDERED_AT::DATE = '2024-01-05'",
            "fixed(38,0)",
            r#"[["1001"]]"#,
        ),
        case(
            "SELECT SPLIT(c.EMAIL, '@')[1]::string AS d, TRUNC(ORDERED_AT, 'MONTH') AS m FROM CUSTOMERS c JOIN ORDERS o USING (CUSTOMER_ID) WHERE o.ORDER_ID = 1001",
            "text|timestamp_ntz",
            r#"[["example.de","2024-01-01 00:00:00"]]"#,
        ),
        case(
            "SELECT ORDERED_AT::VARCHAR AS s, TO_CHAR(ORDERED_AT) AS t, TO_CHAR(SIGNUP_DATE) AS d FROM ORDERS JOIN CUSTOMERS USING (CUSTOMER_ID) WHERE ORDER_ID = 1005",
            "text|text|text",
            r#"[["2024-01-09 11:11:11.250","2024-01-09 11:11:11.250","2023-01-20"]]"#,
        ),
        case(
            "SELECT AMOUNT * 2 AS dbl, dbl + 1 AS plus, SHA2('abc') AS h FROM ORDERS WHERE ORDER_ID = 1006",
            "fixed(*,2)|fixed(*,2)|text",
            r#"[["30.00","31.00","ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]]"#,
        ),
        case(
            "SELECT CUSTOMER_ID, ORDER_ID FROM ORDERS o QUALIFY ROW_NUMBER() OVER (PARTITION BY CUSTOMER_ID ORDER BY o.ORDERED_AT) = 1 ORDER BY o.ORDERED_AT DESC LIMIT 2",
            "fixed(38,0)|fixed(38,0)",
            r#"[["107","1008"],["105","1006"]]"#,
        ),
        case(
            "SELECT * FROM CUSTOMERS QUALIFY COUNT(*) OVER (PARTITION BY REGION) = 2 ORDER BY SIGNUP_DATE",
            "fixed(38,0)|text|text|text|date|boolean",
            r#"[["104","James Carter","james.carter@example.com","US","2021-11-05","true"],["106","Kenji Tanaka","kenji.tanaka@example.jp","APAC","2022-09-12","true"],["105","Maria Lopez","maria.lopez@example.com","US","2023-05-30","true"],["107","Priya Nair","priya.nair@example.in","APAC","2024-02-02",null]]"#,
        ),
    ]
}
