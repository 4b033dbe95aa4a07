//! The `cairn` binary (also installable as `consul`).
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    // No transparent huge pages for this process: mimalloc asks for them on its 1 GiB arena, and with THP each
    // first touch of the heap faults in 2 MiB, so an idle agent kept ~33 MB resident instead of ~12 MB. The
    // agent's heap is small and long-lived; 4 KiB pages are the better fit.
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    std::process::exit(cairn::cli::run(std::env::args_os().collect()));
}
