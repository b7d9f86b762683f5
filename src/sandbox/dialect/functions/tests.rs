use super::strings::{initcap, like};
use super::temporal::{Temporal, add_unit, boundaries, elapsed, format_snowflake, format_spark};
use chrono::NaiveDateTime;

fn d(s: &str) -> NaiveDateTime {
    Temporal::parse(s).unwrap().wall()
}

#[test]
fn datediff_counts_boundaries_and_timestampdiff_whole_units() {
    assert_eq!(
        boundaries(d("2024-01-31"), d("2024-02-01"), "month").unwrap(),
        1
    );
    assert_eq!(
        elapsed(d("2024-01-31"), d("2024-02-01"), "month").unwrap(),
        0
    );
    assert_eq!(
        boundaries(d("2024-01-01 23:59:00"), d("2024-01-02 00:01:00"), "day").unwrap(),
        1
    );
    assert_eq!(
        elapsed(d("2021-02-28 12:00:00"), d("2021-03-28 11:59:59"), "month").unwrap(),
        0
    );
    assert_eq!(
        elapsed(d("2021-01-01"), d("1900-03-28"), "year").unwrap(),
        -120
    );
}

#[test]
fn months_clamp_to_the_last_day() {
    assert_eq!(
        add_unit(d("2024-01-31"), "month", 1)
            .unwrap()
            .date()
            .to_string(),
        "2024-02-29"
    );
}

#[test]
fn formats_both_spellings() {
    let t = Temporal::parse("2024-01-05 09:15:00").unwrap();
    assert_eq!(
        format_snowflake(&t, "YYYY-MM-DD HH24:MI"),
        "2024-01-05 09:15"
    );
    assert_eq!(format_snowflake(&t, "MON DD, YYYY"), "Jan 05, 2024");
    assert_eq!(format_spark(&t, "yyyy-MM-dd HH:mm"), "2024-01-05 09:15");
    assert_eq!(format_spark(&t, "MMM d, yyyy EEE"), "Jan 5, 2024 Fri");
}

#[test]
fn like_matches_wildcards_and_escapes() {
    let m = |p: &str, s: &str| {
        like(
            &p.chars().collect::<Vec<_>>(),
            &s.chars().collect::<Vec<_>>(),
        )
    };
    assert!(m("%schmidt%", "anna.schmidt@example.de"));
    assert!(!m("%Schmidt%", "anna.schmidt@example.de"));
    assert!(m("a_c", "abc") && !m("a_c", "abbc"));
    assert!(m("50\\%", "50%") && !m("50\\%", "500"));
    assert!(m("%a%b%", "xxaxxbxx") && !m("%a%b%", "xxbxxaxx"));
    let long = "a".repeat(5000);
    assert!(!m(&format!("{}b", "%a".repeat(30)), &long));
}

#[test]
fn initcap_delimiters_differ() {
    assert_eq!(initcap("hello-world foo", false), "Hello-World Foo");
    assert_eq!(initcap("hello-world foo", true), "Hello-world Foo");
}
