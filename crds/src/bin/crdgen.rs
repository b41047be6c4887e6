//! Writes the CRD YAML of every ironlb kind.
//!
//! ```text
//! crdgen                 write one file per CRD into charts/ironlb/crds/
//! crdgen --dir DIR       write them into DIR instead
//! crdgen --stdout        print them all as one multi-document YAML stream
//! ```
//!
//! Run it from the repository root as `cargo run --bin crdgen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ironlb_crds::generate::{DEFAULT_DIR, crd_files};

const USAGE: &str = "usage: crdgen [--dir DIR | --stdout]

Writes the CustomResourceDefinitions of ironlb.io, one YAML file per CRD.
  --dir DIR   directory to write into (default: charts/ironlb/crds, from the repository root)
  --stdout    print every CRD to standard output instead, as one multi-document stream";

enum Output {
    Dir { path: PathBuf, explicit: bool },
    Stdout,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Output>, String> {
    let mut output = Output::Dir {
        path: PathBuf::from(DEFAULT_DIR),
        explicit: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--stdout" => output = Output::Stdout,
            "--dir" => {
                let dir = args.next().ok_or("--dir needs a directory")?;
                output = Output::Dir {
                    path: PathBuf::from(dir),
                    explicit: true,
                };
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(output))
}

fn write_dir(dir: &Path, explicit: bool) -> Result<(), String> {
    // The default is relative to the repository root; refuse to scatter files elsewhere.
    if !explicit && !dir.parent().is_some_and(Path::is_dir) {
        return Err(format!(
            "{} does not exist here; run crdgen from the repository root or pass --dir",
            dir.parent().unwrap_or(dir).display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for file in crd_files().map_err(|e| e.to_string())? {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.yaml)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn write_stdout() -> Result<(), String> {
    let files = crd_files().map_err(|e| e.to_string())?;
    let documents: Vec<&str> = files.iter().map(|f| f.yaml.as_str()).collect();
    print!("{}", documents.join("---\n"));
    Ok(())
}

fn main() -> ExitCode {
    let result = match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(Output::Stdout)) => write_stdout(),
        Ok(Some(Output::Dir { path, explicit })) => write_dir(&path, explicit),
        Err(message) => Err(format!("{message}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crdgen: {message}");
            ExitCode::FAILURE
        }
    }
}
