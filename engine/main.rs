//! The `runbook` binary: everything happens in `cli::main`, unless the process is the watchdog
//! that a run starts to stop its steps should the engine die.

fn main() {
    if let Some(code) = runbook::process::watchdog_main() {
        std::process::exit(code);
    }
    runbook::process::enable_watchdog();
    let code = runbook::cli::main();
    runbook::process::dismiss_watchdog();
    std::process::exit(code);
}
