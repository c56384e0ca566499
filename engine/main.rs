//! The `runbook` binary: everything happens in `cli::main`.

fn main() {
    std::process::exit(runbook::cli::main());
}
