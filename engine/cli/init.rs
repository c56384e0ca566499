//! `runbook init`: writes a commented starter runbook that validates.

use std::io::Write;
use std::path::PathBuf;

use super::args::InitArgs;
use super::diagnostics::render_error;
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS, EngineError};

const STARTER: &str = include_str!("starter.yaml");

pub fn init(args: &InitArgs) -> i32 {
    let name = args.name.trim_end_matches(".yaml").trim_end_matches(".yml");
    let file_name = PathBuf::from(format!("{name}.yaml"));
    let runbook_name: String = name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase()
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character
            } else {
                '-'
            }
        })
        .collect();
    if runbook_name.is_empty()
        || !runbook_name.starts_with(|character: char| character.is_ascii_alphanumeric())
    {
        errln!("error: `{name}` cannot be made into a runbook name");
        return EXIT_INVALID;
    }
    let text = STARTER.replace("__NAME__", &runbook_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let written = options
        .open(&file_name)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(cause) = written {
        let error = EngineError::Write {
            path: file_name.display().to_string(),
            cause,
        };
        err!("{}", render_error(&error));
        if file_name.exists() && !args.force {
            errln!("  help: pass `--force` to overwrite it");
        }
        return EXIT_INVALID;
    }
    outln!(
        "wrote `{}`: edit it, then `runbook plan {}`",
        file_name.display(),
        file_name.display()
    );
    EXIT_SUCCESS
}
