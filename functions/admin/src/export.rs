//! The runs export (`GET …/channels/{channel_id}/runs.csv`, DESIGN §1.13):
//! one row per closed or cancelled run, RFC 4180 (the `csv` crate quotes
//! commas, quotes and line breaks), safe to open in a spreadsheet.
//!
//! # Formula injection
//! A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and,
//! in some, a tab or carriage return) as a formula, so an order typed as
//! `=HYPERLINK(…)` could act when an operator opens the file. Every such
//! cell is prefixed with `'`, which spreadsheets show as text (OWASP's
//! "CSV Injection" advice). Nothing we write ourselves (ids, RFC 3339
//! times, counts) starts that way, so only user text is ever changed.

use chrono::{DateTime, SecondsFormat, Utc};
use coffeebuddy_shared::db::stats::ExportedRun;

/// The header row (contract: names the columns, including `runner`).
pub(crate) const HEADER: [&str; 12] = [
    "run_id",
    "status",
    "started_by",
    "started_at",
    "pickup_at",
    "closed_at",
    "runner",
    "order_count",
    "orders",
    "note",
    "picked_up_at",
    "delivered_at",
];

/// A cell that a spreadsheet will not run as a formula.
pub(crate) fn defuse(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The CSV file: the header, then one row per run.
pub(crate) fn runs_csv(runs: &[ExportedRun]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(HEADER)?;
    for run in runs {
        let row = [
            run.run_id.to_string(),
            run.status.clone(),
            run.initiator_id.clone(),
            time(Some(run.created_at)),
            time(run.pickup_at),
            time(run.closed_at),
            run.runner_id.clone().unwrap_or_default(),
            run.order_count.to_string(),
            run.orders.clone(),
            run.note.clone().unwrap_or_default(),
            time(run.picked_up_at),
            time(run.delivered_at),
        ];
        writer.write_record(row.iter().map(|cell| defuse(cell)))?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    fn run(orders: &str, note: Option<&str>) -> ExportedRun {
        ExportedRun {
            run_id: Uuid::from_u128(7),
            status: "closed".to_owned(),
            initiator_id: "U0START".to_owned(),
            created_at: at("2026-12-01T09:00:00Z"),
            pickup_at: Some(at("2026-12-01T09:30:00Z")),
            closed_at: Some(at("2026-12-01T09:20:00Z")),
            runner_id: Some("URUN".to_owned()),
            note: note.map(str::to_owned),
            order_count: 2,
            orders: orders.to_owned(),
            picked_up_at: None,
            delivered_at: Some(at("2026-12-01T09:41:05Z")),
        }
    }

    #[test]
    fn cells_that_would_run_as_formulas_are_prefixed() {
        for bad in ["=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(defuse(bad), format!("'{bad}"));
        }
        for fine in [
            "flat white",
            "U123: =cmd",
            "2026-12-01T09:00:00Z",
            "",
            "'quoted",
        ] {
            assert_eq!(defuse(fine), fine);
        }
    }

    #[test]
    fn the_file_quotes_commas_quotes_and_line_breaks_per_rfc_4180() {
        let bytes = runs_csv(&[run(
            r#"U1: flat white, "extra" hot; U2: =cmd"#,
            Some("=HYPERLINK(\"x\")"),
        )])
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next(),
            Some(
                "run_id,status,started_by,started_at,pickup_at,closed_at,runner,order_count,orders,note,picked_up_at,delivered_at"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                r#"00000000-0000-0000-0000-000000000007,closed,U0START,2026-12-01T09:00:00Z,2026-12-01T09:30:00Z,2026-12-01T09:20:00Z,URUN,2,"U1: flat white, ""extra"" hot; U2: =cmd","'=HYPERLINK(""x"")",,2026-12-01T09:41:05Z"#
            )
        );
        // A reader gets the cells back exactly.
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[8], r#"U1: flat white, "extra" hot; U2: =cmd"#);
        assert_eq!(&row[9], "'=HYPERLINK(\"x\")");
    }

    #[test]
    fn no_runs_is_just_the_header() {
        let text = String::from_utf8(runs_csv(&[]).unwrap()).unwrap();
        assert_eq!(text, format!("{}\r\n", HEADER.join(",")));
    }
}
