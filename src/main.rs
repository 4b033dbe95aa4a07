//! The `cairn` binary (also installable as `consul`).
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    std::process::exit(cairn::cli::run(std::env::args_os().collect()));
}
