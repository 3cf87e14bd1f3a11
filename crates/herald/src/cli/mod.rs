//! The command-line client half of `herald`: `herald listen` and the API commands.

pub mod client;
pub mod commands;
pub mod listen;

/// Writes to stdout for the client commands. When the reader has gone away (`herald app
/// list --json | head -c 10`), the process ends quietly and successfully, as Unix tools
/// do, where `println!` would panic.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("herald: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the client commands: see [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the client commands: see [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}
