//! A Dockerfile read as its build stages and instructions, so the images can be checked
//! without a container engine: which binary is built and copied where, which user and
//! entrypoint the final image has. Pure.

use std::collections::BTreeMap;

use super::Error;

/// One instruction: its keyword in upper case and the rest of the (joined) line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub rest: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The image it starts `FROM`, with `${ARG}` references expanded.
    pub base: String,
    /// Its `AS` name.
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    pub file: String,
    /// `ARG`s declared before the first `FROM`, with their defaults.
    pub global_args: BTreeMap<String, String>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::Dockerfile {
            file: file.to_string(),
            why,
        };
        let mut global_args = BTreeMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        for line in logical_lines(text) {
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            let rest = rest.trim().to_string();
            match keyword.as_str() {
                "FROM" => {
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    let (base, name) = match words.as_slice() {
                        [base] => (*base, None),
                        [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
                            (*base, Some(name.to_string()))
                        }
                        _ => return Err(bad(format!("cannot read `FROM {rest}`"))),
                    };
                    stages.push(Stage {
                        base: expand_args(base, &global_args),
                        name,
                        instructions: Vec::new(),
                    });
                }
                "ARG" if stages.is_empty() => {
                    let (name, default) = rest.split_once('=').unwrap_or((&rest, ""));
                    global_args.insert(name.trim().to_string(), default.trim().to_string());
                }
                _ => match stages.last_mut() {
                    Some(stage) => stage.instructions.push(Instruction { keyword, rest }),
                    None => {
                        return Err(bad(format!("{keyword} before the first FROM")));
                    }
                },
            }
        }
        if stages.is_empty() {
            return Err(bad("no FROM".into()));
        }
        Ok(Dockerfile {
            file: file.to_string(),
            global_args,
            stages,
        })
    }

    /// The stage the image is made of.
    pub fn final_stage(&self) -> &Stage {
        // parse() refuses a file without stages.
        &self.stages[self.stages.len() - 1]
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.as_deref() == Some(name))
    }
}

impl Stage {
    pub fn all(&self, keyword: &str) -> impl Iterator<Item = &str> {
        self.instructions
            .iter()
            .filter(move |i| i.keyword == keyword)
            .map(|i| i.rest.as_str())
    }

    /// The last `USER`, as written.
    pub fn user(&self) -> Option<&str> {
        self.all("USER").last()
    }

    /// The `ENTRYPOINT`, which must be in exec (JSON) form: a shell would need a shell in the
    /// image and would not pass signals on.
    pub fn entrypoint(&self) -> Result<Option<Vec<String>>, String> {
        match self.all("ENTRYPOINT").last() {
            None => Ok(None),
            Some(text) => serde_json::from_str::<Vec<String>>(text)
                .map(Some)
                .map_err(|_| format!("ENTRYPOINT {text} is not in exec (JSON) form")),
        }
    }

    /// `(source, destination)` of every `COPY --from=STAGE`.
    pub fn copies_from(&self, stage: &str) -> Vec<(String, String)> {
        let flag = format!("--from={stage}");
        self.all("COPY")
            .filter_map(|rest| {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if !words.contains(&flag.as_str()) {
                    return None;
                }
                let paths: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                match paths.as_slice() {
                    [src, dst] => Some((src.to_string(), dst.to_string())),
                    _ => None,
                }
            })
            .collect()
    }

    /// Every `EXPOSE`d port as `port/proto` (tcp when unspecified).
    pub fn exposed(&self) -> Vec<String> {
        self.all("EXPOSE")
            .flat_map(str::split_whitespace)
            .map(|p| {
                if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                }
            })
            .collect()
    }
}

/// Lines with continuations joined, comments and blank lines dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let line = current.trim().to_string();
                if !line.is_empty() {
                    out.push(line);
                }
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

fn expand_args(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in args {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# syntax=docker/dockerfile:1
ARG RUST_VERSION=1.89
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# a comment between instructions
RUN --mount=type=cache,target=/src/target \
    cargo build --release -p a --bin a \
 && install -D target/release/a /out/a

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/a /usr/local/bin/a
USER 65532:65532
EXPOSE 7472 7946/udp
ENTRYPOINT ["/usr/local/bin/a"]
"#;

    #[test]
    fn reads_stages_args_and_instructions() {
        let d = Dockerfile::parse("a/Dockerfile", FILE).unwrap();
        assert_eq!(d.global_args["RUST_VERSION"], "1.89");
        assert_eq!(d.stages.len(), 2);
        let build = d.stage("build").unwrap();
        assert_eq!(build.base, "docker.io/library/rust:1.89-bookworm");
        let run: Vec<&str> = build.all("RUN").collect();
        assert_eq!(
            run,
            [
                "--mount=type=cache,target=/src/target cargo build --release -p a --bin a && install -D target/release/a /out/a"
            ]
        );
        let last = d.final_stage();
        assert_eq!(last.base, "gcr.io/distroless/cc-debian12:nonroot");
        assert_eq!(last.user(), Some("65532:65532"));
        assert_eq!(
            last.entrypoint().unwrap(),
            Some(vec!["/usr/local/bin/a".to_string()])
        );
        assert_eq!(
            last.copies_from("build"),
            [("/out/a".to_string(), "/usr/local/bin/a".to_string())]
        );
        assert_eq!(last.exposed(), ["7472/tcp", "7946/udp"]);
    }

    #[test]
    fn malformed_files_are_errors() {
        for bad in ["", "RUN true\nFROM x\n", "FROM a b\n", "FROM\n"] {
            assert!(Dockerfile::parse("f", bad).is_err(), "{bad:?}");
        }
        let shell_form = Dockerfile::parse("f", "FROM x\nENTRYPOINT /bin/a --flag\n").unwrap();
        assert!(shell_form.final_stage().entrypoint().is_err());
    }
}
