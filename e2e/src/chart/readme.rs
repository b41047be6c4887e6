//! Reading the README as a user would follow it: its sections, the shell commands of its
//! ```` ```sh ```` blocks (with heredoc bodies set apart), its inline code spans, its tables,
//! and a binary's `--help` (flags, environment variables, defaults), so a test can check the
//! documented commands, flags and metrics against the chart and the binaries. Pure.

use std::collections::BTreeMap;

use super::Error;

/// The text of `## heading` up to the next `## ` heading (subsections included).
pub fn section<'a>(markdown: &'a str, heading: &str) -> Result<&'a str, Error> {
    let marker = format!("## {heading}");
    let start = markdown
        .lines()
        .scan(0usize, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| line.trim_end() == marker)
        .map(|(offset, _)| offset)
        .ok_or_else(|| Error::Manifest(format!("the README has no section {marker:?}")))?;
    let body = &markdown[start + marker.len()..];
    let end = body
        .match_indices("\n## ")
        .map(|(i, _)| i)
        .next()
        .unwrap_or(body.len());
    Ok(&body[..end])
}

/// The contents of every fenced block whose info string is `lang` (`sh`, `yaml`), with the
/// fence's indentation removed.
pub fn fenced_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None if trimmed.starts_with("```") && trimmed[3..].trim() == lang => {
                current = Some((indent, Vec::new()));
            }
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                if let Some((_, lines)) = current.take() {
                    out.push(lines.join("\n"));
                }
            }
            Some((indent, lines)) => {
                let cut = line
                    .char_indices()
                    .take_while(|(i, c)| *i < *indent && *c == ' ')
                    .count();
                lines.push(line[cut..].to_string());
            }
        }
    }
    out
}

/// The markdown without its fenced blocks.
fn outside_fences(markdown: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every inline code span outside fenced blocks, with line breaks inside it made spaces.
pub fn inline_code(markdown: &str) -> Vec<String> {
    let text = outside_fences(markdown);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(len) = after.find('`') else { break };
        let span = after[..len]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !span.is_empty() {
            out.push(span);
        }
        rest = &after[len + 1..];
    }
    out
}

/// A shell block split into its commands and heredoc bodies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// One entry per pipeline stage, as words (quotes removed, comments dropped).
    pub commands: Vec<Vec<String>>,
    /// The bodies of `<<'WORD'` / `<<WORD` heredocs, in order.
    pub heredocs: Vec<String>,
}

/// Parses a shell block the simple way the README writes them: one command per line
/// (backslash continuations joined), pipelines split on `|`, `&&` and `;`, heredocs read up to
/// their terminator.
pub fn script(block: &str) -> Result<Script, Error> {
    let mut out = Script::default();
    let mut lines = block.lines();
    let mut pending = String::new();
    while let Some(line) = lines.next() {
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let logical = std::mem::take(&mut pending);
        let words = words(&logical)?;
        // A heredoc marker: its body follows, up to the terminator line.
        if let Some(pos) = words.iter().position(|w| w.starts_with("<<")) {
            let word = words[pos].trim_start_matches("<<");
            let terminator = if word.is_empty() {
                words
                    .get(pos + 1)
                    .cloned()
                    .ok_or_else(|| Error::Manifest(format!("heredoc without a word: {line}")))?
            } else {
                word.to_string()
            };
            let mut body = Vec::new();
            loop {
                let Some(next) = lines.next() else {
                    return Err(Error::Manifest(format!(
                        "heredoc {terminator:?} is never closed"
                    )));
                };
                if next.trim() == terminator {
                    break;
                }
                body.push(next);
            }
            out.heredocs.push(body.join("\n"));
        }
        let mut stage = Vec::new();
        for word in words {
            if word.starts_with("<<") {
                continue;
            }
            if ["|", "&&", ";", "||"].contains(&word.as_str()) {
                if !stage.is_empty() {
                    out.commands.push(std::mem::take(&mut stage));
                }
                continue;
            }
            stage.push(word);
        }
        // The heredoc's quoted word (`<< 'YAML'`) is not an argument.
        if !stage.is_empty() {
            out.commands.push(stage);
        }
    }
    Ok(out)
}

/// Splits one command line into words as a POSIX shell would, for the quoting the README
/// uses: single quotes, double quotes, backslash escapes, `#` comments, and `|`, `&&`, `;`
/// as words of their own. The word after `<<` keeps its `<<` prefix.
pub fn words(line: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(Error::Manifest(format!("unclosed ' in {line:?}"))),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(c) = chars.next() {
                                word.push(c);
                            }
                        }
                        Some(c) => word.push(c),
                        None => return Err(Error::Manifest(format!("unclosed \" in {line:?}"))),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '|' | ';' | '&' => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let mut op = c.to_string();
                if (c == '&' || c == '|') && chars.peek() == Some(&c) {
                    chars.next();
                    op.push(c);
                }
                out.push(op);
            }
            '<' if !in_word && chars.peek() == Some(&'<') => {
                chars.next();
                word.push_str("<<");
                in_word = true;
                // `<< 'WORD'` and `<<'WORD'` alike.
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// The value of `--name VALUE` or `--name=VALUE` (or `-n VALUE` when `short` is given), every
/// occurrence.
pub fn option_values(command: &[String], long: &str, short: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < command.len() {
        let w = &command[i];
        if let Some(v) = w.strip_prefix(&format!("{long}=")) {
            out.push(v.to_string());
        } else if (w == long || Some(w.as_str()) == short) && i + 1 < command.len() {
            out.push(command[i + 1].clone());
            i += 1;
        }
        i += 1;
    }
    out
}

/// The rows of every markdown table in `text`, as cells (outer pipes removed, cells trimmed);
/// separator rows are skipped.
pub fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && l.ends_with('|') && l.len() > 1)
        .map(|l| {
            l[1..l.len() - 1]
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<String>>()
        })
        .filter(|cells| {
            !cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
        })
        .collect()
}

/// The backticked tokens of a table cell, leaving out parenthesised remarks
/// (`` `result` (`ok`, `error`) `` gives `result`).
pub fn code_tokens(cell: &str) -> Vec<String> {
    let mut text = String::new();
    let mut depth = 0usize;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => text.push(c),
            _ => {}
        }
    }
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// What `--help` says about one flag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelpFlag {
    pub env: Option<String>,
    pub default: Option<String>,
}

/// The long flags of a clap `--help` text with their `[env: X=]` and `[default: V]`.
pub fn help_flags(help: &str) -> BTreeMap<String, HelpFlag> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim();
        let flag_line = trimmed.starts_with("--")
            || (trimmed.starts_with('-') && trimmed.get(2..4) == Some(", "));
        if flag_line && line.starts_with("  ") {
            let long = trimmed
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .map(|w| w.split('=').next().unwrap_or(w).to_string());
            if let Some(long) = &long {
                out.insert(long.clone(), HelpFlag::default());
            }
            current = long;
            continue;
        }
        let Some(flag) = &current else { continue };
        let entry = out.entry(flag.clone()).or_default();
        for (tag, slot) in [
            ("[env: ", &mut entry.env),
            ("[default: ", &mut entry.default),
        ] {
            if let Some(start) = trimmed.find(tag) {
                let value = &trimmed[start + tag.len()..];
                let value = value.split(']').next().unwrap_or(value);
                *slot = Some(value.trim_end_matches('=').to_string());
            }
        }
        if let Some(env) = &mut entry.env {
            // `[env: NAME=value]` shows the current value; keep the name.
            if let Some((name, _)) = env.split_once('=') {
                *env = name.to_string();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = r#"# title

## Quickstart on kind

1. Create:

   ```sh
   cat <<'YAML' | kind create cluster --name demo --config -
   kind: Cluster
   YAML
   helm install ironlb charts/ironlb -n ironlb-system \
     --set 'a.b={1,2}' --set "c=d e"   # a comment
   ```

Use `helm upgrade x
--set y=1` or `--flag`.

## Reference

| flag | env | default |
|---|---|---|
| `--namespace` | `NS` | `ironlb-system` |
| `result` (`ok`, `error`) | x | y |
"#;

    #[test]
    fn sections_blocks_and_spans() {
        let quick = section(README, "Quickstart on kind").unwrap();
        assert!(quick.contains("helm install") && !quick.contains("| flag"));
        assert!(section(README, "Nope").is_err());
        let blocks = fenced_blocks(quick, "sh");
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].starts_with("cat <<'YAML'"), "{blocks:?}");
        assert_eq!(
            inline_code(README),
            [
                "helm upgrade x --set y=1",
                "--flag",
                "--namespace",
                "NS",
                "ironlb-system",
                "result",
                "ok",
                "error"
            ]
        );
    }

    #[test]
    fn scripts_split_into_commands_and_heredocs() {
        let block = &fenced_blocks(README, "sh")[0];
        let s = script(block).unwrap();
        assert_eq!(s.heredocs, ["kind: Cluster"]);
        let words: Vec<Vec<&str>> = s
            .commands
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            words,
            [
                vec!["cat"],
                vec![
                    "kind", "create", "cluster", "--name", "demo", "--config", "-"
                ],
                vec![
                    "helm",
                    "install",
                    "ironlb",
                    "charts/ironlb",
                    "-n",
                    "ironlb-system",
                    "--set",
                    "a.b={1,2}",
                    "--set",
                    "c=d e"
                ],
            ]
        );
        assert_eq!(
            option_values(&s.commands[2], "--namespace", Some("-n")),
            ["ironlb-system"]
        );
        assert_eq!(
            option_values(&s.commands[2], "--set", None),
            ["a.b={1,2}", "c=d e"]
        );
    }

    #[test]
    fn malformed_shell_is_an_error() {
        for bad in [
            "echo 'unclosed",
            "echo \"unclosed",
            "cat <<EOF\nno end",
            "cat <<",
        ] {
            assert!(script(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            words("a && b; c || d").unwrap(),
            ["a", "&&", "b", ";", "c", "||", "d"]
        );
        assert_eq!(words("x\\ y 'a b'\"c\"").unwrap(), ["x y", "a bc"]);
    }

    #[test]
    fn tables_and_code_tokens() {
        let rows = table_rows(section(README, "Reference").unwrap());
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[1][0], "`--namespace`");
        assert_eq!(code_tokens(&rows[2][0]), ["result"]);
        assert_eq!(code_tokens("`a`, `b`"), ["a", "b"]);
        assert!(code_tokens("none").is_empty());
    }

    #[test]
    fn help_text_gives_flags_envs_and_defaults() {
        let help = "Usage: x [OPTIONS]\n\nOptions:\n      --namespace <NAMESPACE>\n          Where\n          \n          [env: IRONLB_NAMESPACE=]\n          [default: ironlb-system]\n\n      --ignore-unclassed\n          [env: IRONLB_IGNORE_UNCLASSED=1]\n\n      --identity <IDENTITY>\n          Name [default: <hostname>_<pid>]\n          \n          [env: POD_NAME=]\n\n  -h, --help\n          Print help\n";
        let flags = help_flags(help);
        assert_eq!(
            flags["--namespace"],
            HelpFlag {
                env: Some("IRONLB_NAMESPACE".into()),
                default: Some("ironlb-system".into())
            }
        );
        assert_eq!(
            flags["--ignore-unclassed"].env.as_deref(),
            Some("IRONLB_IGNORE_UNCLASSED")
        );
        assert_eq!(flags["--ignore-unclassed"].default, None);
        assert_eq!(
            flags["--identity"].default.as_deref(),
            Some("<hostname>_<pid>")
        );
        assert!(flags.contains_key("--help"));
        assert_eq!(flags.len(), 4);
    }
}
