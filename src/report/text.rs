//! Text helpers every markdown writer of the report uses: thousands separators, table-cell
//! escaping, table heads, file names, shell words for the commands a report prints.

use super::plots::fmt_budget;

/// `50 000`-style thousands with the short form: `50 000 (50k)`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    if n >= 1000 {
        format!("{out} ({})", fmt_budget(n))
    } else {
        out
    }
}

/// Escape a table cell.
pub(super) fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The last component of a path, for a table.
pub(super) fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A markdown table's head: the column names and the separator row.
pub(super) fn table_head(s: &mut String, columns: &[&str]) -> std::fmt::Result {
    use std::fmt::Write;
    writeln!(s, "| {} |", columns.join(" | "))?;
    writeln!(s, "|{}", "---|".repeat(columns.len()))
}

/// `arg` as one word of a POSIX shell: as it is when it holds no character the shell treats
/// specially, else in single quotes.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./,:=@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
