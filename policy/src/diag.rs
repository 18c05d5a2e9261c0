//! User-facing validation errors: what is wrong, where (line and column), and how to fix it.

use std::fmt;
use std::ops::Range;

/// One problem found in a covenant file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range in the source the problem points at, if any.
    pub span: Option<Range<usize>>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, in one sentence.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem at `span`.
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            span: Some(span),
            message: message.into(),
            help: None,
        }
    }

    /// A problem with no single place in the file.
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            span: None,
            message: message.into(),
            help: None,
        }
    }

    /// Adds how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// All problems found in one file, in file order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "error: {}", d.message)?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

impl Diagnostic {
    /// Renders like a compiler error: `file:line:col: error: …`, the source line, a caret, the help.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        match &self.span {
            Some(span) => {
                let (line, col) = line_col(source, span.start);
                out.push_str(&format!("{file}:{line}:{col}: error: {}\n", self.message));
                if let Some(text) = source.lines().nth(line - 1) {
                    let width = source
                        .get(span.clone())
                        .map_or(1, |s| s.lines().next().unwrap_or("").chars().count().max(1));
                    out.push_str(&format!("{line:>5} | {text}\n"));
                    out.push_str(&format!(
                        "      | {}{}\n",
                        " ".repeat(col - 1),
                        "^".repeat(
                            width
                                .min(text.chars().count().saturating_sub(col - 1))
                                .max(1)
                        )
                    ));
                }
            }
            None => out.push_str(&format!("{file}: error: {}\n", self.message)),
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("      = help: {help}\n"));
        }
        out
    }
}

impl Diagnostics {
    /// Renders every problem, then a count.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out: String = self
            .0
            .iter()
            .map(|d| d.render(file, source) + "\n")
            .collect();
        let n = self.0.len();
        out.push_str(&format!(
            "{file}: {n} error{} found; nothing was loaded\n",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 8), (2, 3));
        assert_eq!(line_col(src, 999), (3, 1));
    }

    #[test]
    fn renders_with_caret_and_help() {
        let src = "x = 1\nid = \"oops\"\n";
        let d = Diagnostic::at(11..17, "bad id").help("use another");
        assert_eq!(
            d.render("f.toml", src),
            "f.toml:2:6: error: bad id\n    2 | id = \"oops\"\n      |      ^^^^^^\n      = help: use another\n"
        );
    }
}
